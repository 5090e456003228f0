"""Dense facial landmarks (dlib 68-point shape predictor) and 5-point reductions.

The face swapper needs dense landmarks to build a piecewise-affine warp; this module runs dlib's
regression-tree shape predictors shipped in ``face_recognition_models``. The 68-point one runs through the
NumPy port in :mod:`perface.face.shape_predictor` (dlib's points exactly, without dlib's 0.55 s load of its
100 MB file; about 1 ms slower a face, and it runs once a face); the 5-point one, run after every swap tried
by the dlib check, stays in dlib (0.06 s to load, 1.3 against 2.5-3.3 ms a call on this machine).

Licence note: the 68-point model (``shape_predictor_68_face_landmarks.dat``) was trained on
the iBUG 300-W data set, whose terms forbid commercial use; treat anything that depends on
:func:`predict_landmarks68` as non-commercial. The 5-point model
(``shape_predictor_5_face_landmarks.dat``, used by :func:`predict_landmarks5`) is CC0.

Point order is the usual iBUG 68 convention: 0-16 jaw (image left to right), 17-21 and 22-26
brows, 27-30 nose bridge, 31-35 nostrils, 36-41 image-left eye, 42-47 image-right eye,
48-59 outer lips, 60-67 inner lips.
"""

from __future__ import annotations

import threading
import warnings
from typing import Literal

import numpy as np

__all__ = [
    "IBUG68_MIRROR",
    "get_shape_predictor",
    "inter_ocular_distance",
    "landmarks5_from_68",
    "predict_landmarks5",
    "predict_landmarks68",
]

_LOCK = threading.Lock()
_PREDICTORS: dict[int, object] = {}

# Index permutation that maps the 68 points of a face to those of its horizontal mirror image.
IBUG68_MIRROR: np.ndarray = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46]  # eye (image-left) <- image-right eye
    + [39, 38, 37, 36, 41, 40]  # eye (image-right) <- image-left eye
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65],  # inner lips
    dtype=np.intp,
)


class _DlibPredictor:
    """dlib's own predictor behind the port's call signature (the fallback for a file the port cannot read)."""

    def __init__(self, path: str) -> None:
        import dlib

        self._predictor = dlib.shape_predictor(path)

    def __call__(self, image: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
        import dlib

        shape = self._predictor(image, dlib.rectangle(*rect))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.int64)


def get_shape_predictor(points: Literal[68, 5] = 68):
    """The cached predictor (loaded lazily, once per process): ``predictor(image, (left, top, right, bottom))``
    gives dlib's (points, 2) int64 landmarks for that rectangle."""
    if points not in (68, 5):
        raise ValueError(f"points must be 68 or 5, got {points!r}")
    pred = _PREDICTORS.get(points)
    if pred is not None:
        return pred
    with _LOCK:
        pred = _PREDICTORS.get(points)
        if pred is None:
            import face_recognition_models as frm

            from perface.face.shape_predictor import ShapeFormatError, load_shape_predictor

            path = (
                frm.pose_predictor_model_location()
                if points == 68
                else frm.pose_predictor_five_point_model_location()
            )
            try:
                pred = load_shape_predictor(path) if points == 68 else _DlibPredictor(path)
            except (ShapeFormatError, OSError) as exc:
                warnings.warn(f"{path}: running dlib's own shape predictor ({exc})", stacklevel=2)
                pred = _DlibPredictor(path)
            _PREDICTORS[points] = pred
    return pred


def _prepare(image: np.ndarray, box: tuple[float, float, float, float]) -> tuple[np.ndarray, tuple[int, ...]]:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
    if not img.flags.c_contiguous:
        img = np.ascontiguousarray(img)
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (np.isfinite([x1, y1, x2, y2]).all() and x2 > x1 and y2 > y1):
        raise ValueError(f"invalid box {box!r}")
    return img, (int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2)))


def _run(points: Literal[68, 5], image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    img, rect = _prepare(image, box)
    return get_shape_predictor(points)(img, rect).astype(np.float32)


def predict_landmarks68(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Predict the 68 iBUG landmarks of the face in ``box`` (x1, y1, x2, y2) of an RGB uint8 image.

    Returns a (68, 2) float32 array of (x, y) pixel coordinates; points may fall outside the image
    when the face is cut by the border. Non-commercial model, see module docstring.
    """
    return _run(68, image, box)


def predict_landmarks5(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Predict dlib's 5 points (CC0 model): image-right eye outer/inner, image-left eye outer/inner,
    nose base. Returns (5, 2) float32, same order as :func:`landmarks5_from_68` with ``"dlib"``."""
    return _run(5, image, box)


def landmarks5_from_68(lm68: np.ndarray, convention: Literal["arcface", "dlib"] = "arcface") -> np.ndarray:
    """Reduce 68 landmarks to 5 points, (5, 2) float32.

    ``"arcface"`` (default, the layout used by ArcFace/InsightFace alignment templates): image-left
    eye centre, image-right eye centre, nose tip, image-left mouth corner, image-right mouth corner.
    ``"dlib"``: the layout of dlib's 5-point model (points 45, 42, 36, 39, 33).
    """
    lm = np.asarray(lm68, dtype=np.float32)
    if lm.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {lm.shape}")
    if convention == "dlib":
        return lm[[45, 42, 36, 39, 33]].copy()
    if convention != "arcface":
        raise ValueError(f"unknown convention {convention!r}")
    return np.stack([lm[36:42].mean(axis=0), lm[42:48].mean(axis=0), lm[30], lm[48], lm[54]]).astype(
        np.float32
    )


def inter_ocular_distance(lm68: np.ndarray) -> float:
    """Distance in pixels between the two eye centres (a robust face-size measure)."""
    lm = np.asarray(lm68, dtype=np.float64)
    return float(np.linalg.norm(lm[36:42].mean(axis=0) - lm[42:48].mean(axis=0)))
