"""MediaPipe FaceMesh: 468 landmarks in 3D, which follow a face turned well past what dlib's 68-point model fits.

The profile swap (:mod:`perface.anonymize.mesh_swap`) maps a frontal donor's texture onto a turned face through
them. The network (shipped TF.js graph ``facemesh``, run in ONNX Runtime like the recognizers) takes a 192 px
crop of the face, turned so that its eyes are level, RGB in 0..1; it returns the points in that crop's pixels
(``z``: relative depth on the same scale, smaller = nearer the camera) and the probability that the crop holds a
face. :func:`face_mesh` maps them back to the image.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

SIDE = 192  # the network's input side
OUTPUTS = ("Identity_2", "Identity_1")  # mesh (468 x 3), face flag
#: The crop is the box's longer side times this, centred on the box: MediaPipe's own pipeline enlarges its
#: detector's box by 1.5; CenterFace's boxes are a little tighter (brows to chin), so a little more.
ENLARGE = 1.6
#: MediaPipe's eye contours (left and right of the image of a frontal face) and the lips' outer contour.
EYE_A = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
EYE_B = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
#: MediaPipe's upper eyebrow contours (both brows) and the point under the nose (its base).
BROWS = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)
NOSE_BASE = 2
LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)


@dataclass
class Mesh:
    """468 points (x, y in image pixels; z relative depth in pixels, smaller = nearer) and the face probability."""

    points: np.ndarray
    score: float


class _Runner:
    """Loads the network once per process, on first use (ONNX Runtime; PyTorch when that is off)."""

    def __init__(self) -> None:
        self._torch: Any = None
        self._lock = threading.Lock()

    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from perface.backbones.onnx_graphs import tfjs_graph
        from perface.backbones.runtime import onnx_net

        x = np.ascontiguousarray(crops, dtype=np.float32) / 255.0
        net = onnx_net(tfjs_graph("facemesh", OUTPUTS))
        if net is not None:
            mesh, flag = net(x)
        else:
            mesh, flag = self._run_torch(x)
        return np.asarray(mesh, np.float32).reshape(-1, 468, 3), np.asarray(flag, np.float32).reshape(-1)

    def _run_torch(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with self._lock:
            if self._torch is None:
                from perface.backbones.runtime import set_torch_threads
                from perface.backbones.tfjs import load_tfjs_model

                set_torch_threads()
                self._torch = load_tfjs_model("facemesh")
        with torch.inference_mode():
            out = self._torch(torch.from_numpy(x), outputs=list(OUTPUTS))
        return out[OUTPUTS[0]].float().numpy(), out[OUTPUTS[1]].float().numpy()


_RUNNER = _Runner()


def crop_transform(box: tuple[float, float, float, float], eyes: np.ndarray | None,
                   enlarge: float = ENLARGE) -> np.ndarray:
    """2 x 3 affine from the image to the network's crop: the box's centre at the crop's, its longer side times
    ``enlarge`` across it, turned so that ``eyes`` (2 x 2, the face's left eye first) are level."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    side = max(x2 - x1, y2 - y1) * enlarge
    angle = 0.0
    if eyes is not None:
        d = np.asarray(eyes[1], np.float64) - np.asarray(eyes[0], np.float64)
        angle = float(np.degrees(np.arctan2(d[1], d[0])))
    a = cv2.getRotationMatrix2D((cx, cy), angle, SIDE / max(side, 1e-6))
    a[:, 2] += (SIDE / 2.0 - cx, SIDE / 2.0 - cy)
    return a


def face_mesh(image: np.ndarray, box: tuple[float, float, float, float], eyes: np.ndarray | None = None,
              enlarge: float = ENLARGE) -> Mesh:
    """The mesh of the face in ``box`` of an RGB uint8 image (``eyes``: its two eye centres, to level it)."""
    a = crop_transform(box, eyes, enlarge)
    crop = cv2.warpAffine(np.ascontiguousarray(image), a, (SIDE, SIDE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    pts, flag = _RUNNER(crop[None])
    inv = cv2.invertAffineTransform(a)
    xy = pts[0, :, :2].astype(np.float64) @ inv[:, :2].T + inv[:, 2]
    scale = float(np.sqrt(abs(np.linalg.det(inv[:, :2]))))
    return Mesh(points=np.c_[xy, pts[0, :, 2] * scale], score=float(flag[0]))
