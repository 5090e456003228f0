"""Aligned face crops by a similarity transform, with the transform kept for mapping back.

Two crops: dlib's 150 px chip (exactly what dlib's identity network expects, cut from dlib's
5-point landmarks) and the 112 px ArcFace template crop (from the detector's 5 landmarks).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from perface.face.detect import Face, dlib_shape

#: insightface's 112x112 five-point template (left eye, right eye, nose, left mouth, right mouth).
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


@dataclass(frozen=True)
class AlignedFace:
    """A crop plus the 2x3 affine matrix that maps image coordinates into crop coordinates."""

    crop: np.ndarray
    matrix: np.ndarray

    @property
    def inverse(self) -> np.ndarray:
        """2x3 matrix mapping crop coordinates back into the image."""
        return cv2.invertAffineTransform(self.matrix)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) crop points back into image coordinates."""
        return transform_points(points, self.inverse)

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) image points into crop coordinates."""
        return transform_points(points, self.matrix)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (N, 2) points."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return (pts @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (uniform scale, rotation, shift) taking (N, D) points ``src`` onto ``dst``
    (Umeyama's closed form, any dimension): ``dst ~ scale * src @ rot.T + shift``."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(src.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1, -1] = -1
    rot = u @ sign @ vt
    var = (s**2).sum() / len(src)
    scale = float((sig * np.diag(sign)).sum() / var) if var > 0 else 1.0
    return scale, rot, mu_d - scale * rot @ mu_s


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, shift) taking 2-D src to dst, as a 2 x 3 matrix."""
    scale, rot, shift = umeyama(src, dst)
    mat = np.zeros((2, 3))
    mat[:, :2] = scale * rot
    mat[:, 2] = shift
    return mat


def arcface_crop(image: np.ndarray, face: Face, size: int = 112) -> AlignedFace:
    """The ArcFace 112 px template crop (scaled for other sizes) from the face's 5 landmarks."""
    dst = ARCFACE_TEMPLATE_112 * (size / 112.0)
    mat = similarity_matrix(face.landmarks, dst)
    crop = cv2.warpAffine(image, mat, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return AlignedFace(crop=crop, matrix=mat.astype(np.float64))


def _dlib_chip_matrix(details) -> np.ndarray:
    """Image->chip affine matrix of a dlib ``chip_details`` (dlib's ``get_mapping_to_chip``)."""
    rect = details.rect
    cx = (rect.left() + rect.right()) / 2.0
    cy = (rect.top() + rect.bottom()) / 2.0
    angle = details.angle
    c, s = np.cos(angle), np.sin(angle)

    def rot(x: float, y: float) -> tuple[float, float]:
        dx, dy = x - cx, y - cy
        return cx + c * dx - s * dy, cy + s * dx + c * dy

    src = np.array([rot(rect.left(), rect.top()), rot(rect.right(), rect.top()),
                    rot(rect.right(), rect.bottom())], dtype=np.float32)
    dst = np.array([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]], dtype=np.float32)
    return cv2.getAffineTransform(src, dst).astype(np.float64)


def dlib_chip(image: np.ndarray, face: Face, size: int = 150, padding: float = 0.25) -> AlignedFace:
    """dlib's aligned face chip (``get_face_chip`` from its 5-point shape) and its transform."""
    import dlib

    shape = dlib_shape(image, face.box, 5)
    details = dlib.get_face_chip_details(shape, size, padding)
    chip = dlib.extract_image_chip(image, details)
    return AlignedFace(crop=np.asarray(chip, dtype=np.uint8), matrix=_dlib_chip_matrix(details))


def region_crop(image: np.ndarray, x1: float, y1: float, x2: float, y2: float, size: int) -> np.ndarray:
    """The axis-aligned region (x1, y1)-(x2, y2) resized to ``size`` x ``size``; outside the image, its border
    is replicated (the box crops of HSE FaceRes and GEAR, which are not landmark-aligned)."""
    sx, sy = size / max(1e-6, x2 - x1), size / max(1e-6, y2 - y1)
    mat = np.array([[sx, 0, -x1 * sx], [0, sy, -y1 * sy]])
    return cv2.warpAffine(image, mat, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
