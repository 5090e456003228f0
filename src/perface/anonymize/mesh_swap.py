"""A face swap through MediaPipe's 3-D face mesh, for faces turned too far for the classic 68-point swap.

Why: dlib's 68-point model and the classic swap's 2-D triangulation assume a face seen from the front; past
about 45 degrees of yaw the anonymizer had to blur the face, which then loses its gender and, half the time, its
detectability. FaceMesh (:mod:`perface.face.mesh`) fits 468 points in 3-D to faces turned much further. The donor
(a frontal gallery face) gets its mesh too; the donor's mesh is posed onto the target's by a 3-D similarity fit and
its points moved there (its proportions and outline; what the new outline leaves of the old face is painted from
around it); then every triangle of a fixed triangulation that faces the camera in that pose is filled with the
donor's texture, far ones first, so the nose hides the far cheek as it should. Colour matching and blending as in
:class:`perface.anonymize.swap.ClassicSwapper`. Known weak spot: the cheek a turned face shows broadly is seen
edge-on in a frontal donor, so its texture there is stretched from the donor's face edge (streaks, a speck of hair).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import cv2
import numpy as np

from perface.anonymize.swap import (
    SwapResult,
    _color_transfer,
    _disk,
    _eye_centres,
    _hull,
    blend_into,
    piecewise_affine_warp,
)
from perface.face.align import umeyama
from perface.face.mesh import BROWS, EYE_A, EYE_B, LIPS, NOSE_BASE, Mesh, face_mesh


def signed_areas(pts: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Signed area of each triangle (positive: counter-clockwise in image axes, y down)."""
    p = pts[tri]
    return 0.5 * ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                  - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1]))


@cache
def triangles() -> np.ndarray:
    """The shipped triangulation of FaceMesh's 468 points (``tools/facemesh_triangles.py``), counter-clockwise on a
    frontal face."""
    path = resources.files("perface").joinpath("models", "tfjs", "facemesh", "triangles.npy")
    with path.open("rb") as f:
        return np.load(f).astype(np.intp)


def donor_box_and_eyes(landmarks68: np.ndarray) -> tuple[tuple[float, float, float, float], np.ndarray]:
    """A face box (brows raised by 15% of the face's height, for the forehead) and the eye centres from 68
    landmarks: where FaceMesh is run on a gallery donor."""
    lm = np.asarray(landmarks68, np.float64)
    lo, hi = lm.min(0), lm.max(0)
    box = (float(lo[0]), float(lo[1] - 0.15 * (hi[1] - lo[1])), float(hi[0]), float(hi[1]))
    return box, np.stack(_eye_centres(lm))


def fill_from_around(image: np.ndarray, hole: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` with the ``hole`` pixels painted from the pixels around them: a Gaussian average of the known
    pixels only (normalised convolution), widened until it reaches every hole pixel. Why not cv2.inpaint: 30-40 ms a
    face, this about 2 ms, and what it fills is a thin band beside a face, where a smooth fill suffices."""
    known = (~hole).astype(np.float32)
    out = image.copy()
    todo = hole.copy()
    while todo.any() and sigma < 4 * max(image.shape[:2]):
        weight = cv2.GaussianBlur(known, (0, 0), sigma)
        total = cv2.GaussianBlur(image.astype(np.float32) * known[..., None], (0, 0), sigma)
        reached = todo & (weight > 1e-3)
        out[reached] = np.clip(total[reached] / weight[reached][:, None], 0, 255).astype(np.uint8)
        todo &= ~reached
        sigma *= 2
    return out


@dataclass
class MeshSwapper:
    """Swap a frontal donor onto a (possibly turned) face through both faces' 3-D meshes.

    ``shape_transfer``: how far (0..1) the mesh's points move from the target's to the donor's posed mesh (its
    proportions and outline; ``silhouette_band`` keeps the target's outline instead). ``min_score``: least FaceMesh
    face probability for either face. ``min_face_px``: least face size (the mesh's height). Colour and blending as
    the classic swap (:func:`perface.anonymize.swap.blend_face`).
    """

    shape_transfer: float = 1.0
    min_score: float = 0.5
    min_face_px: float = 24.0
    color_match: bool = True
    max_color_gain: float = 1.3
    blend: str = "seamless"
    membrane: float = 0.0
    membrane_ramp: float = 0.3
    feather_scale: float = 0.05
    erode_scale: float = 0.03
    poisson_max_px: int = 96
    # None: the donor's silhouette too, the old face's uncovered rest inpainted from around it. On 19 turned CelebA
    # faces x 4 donors, keeping the target's silhouette (0.04 x the face size) left FaceRes verifying 43% of the
    # swaps rather than 32% (MobileFaceNet 25% rather than 18%): a turned face's outline carries its identity.
    silhouette_band: float | None = None
    # How far above the brows (in brow-to-nose-base heights, measured on the donor) the swapped region reaches, as
    # the classic swap's ``forehead``; None: the whole mesh (the default). Looked at on 6 turned AVFS faces, 0.4 or
    # 0.8 removed the dark band a donor's low hairline can leave across the forehead but left a straight seam there
    # instead, and more swaps were refused by the identity checks (less of the face replaced): not the default.
    forehead: float | None = None
    name: str = field(default="mesh", init=False)
    _donors: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def donor_mesh(self, key: object, image: np.ndarray, landmarks68: np.ndarray) -> tuple[Mesh, np.ndarray]:
        """The donor's mesh and the triangles to fill from it (the shipped triangulation), computed once per ``key``.
        A triangle folded over in this donor's layout (a sliver at the eyes or lips) still fills its place: leaving
        it out would leave a hole in the swapped face."""
        with self._lock:
            hit = self._donors.get(key)
        if hit is not None:
            return hit
        mesh = face_mesh(image, *donor_box_and_eyes(landmarks68))
        tri = triangles()
        if self.forehead is not None:  # the donor's upper forehead often holds its hairline or fringe: leave it out
            y = mesh.points[:, 1]
            brow = float(y[list(BROWS)].mean())
            top = brow - self.forehead * (float(y[NOSE_BASE]) - brow)
            tri = tri[(y[tri] >= top).all(1)]
        with self._lock:
            self._donors[key] = (mesh, tri)
            while len(self._donors) > 512:
                self._donors.popitem(last=False)
        return mesh, tri

    def swap_mesh(self, target_image: np.ndarray, target: Mesh, donor_image: np.ndarray, donor: Mesh,
                  tri: np.ndarray) -> SwapResult:
        """Paste the donor onto the target given both meshes and the donor's triangulation."""
        img = np.ascontiguousarray(target_image)
        h, w = img.shape[:2]
        info: dict[str, object] = {"swapper": "mesh", "target_mesh_score": round(target.score, 3),
                                   "donor_mesh_score": round(donor.score, 3)}
        t3, d3 = target.points.astype(np.float64), donor.points.astype(np.float64)
        t2 = t3[:, :2]
        size = float(np.ptp(t2[:, 1]))
        info["face_size_px"] = size
        if target.score < self.min_score or donor.score < self.min_score:
            return SwapResult(img.copy(), self._hull_mask(t2, h, w), False, "no face mesh fitted", info)
        if size < self.min_face_px:
            return SwapResult(img.copy(), self._hull_mask(t2, h, w), False, "too small", info)
        s, rot, off = umeyama(d3, t3)
        posed = (s * d3 @ rot.T) + off
        if self.silhouette_band is None:  # the donor's silhouette too; the old face's rest is filled in below
            move = np.full(len(t2), self.shape_transfer)
        else:  # the target's silhouette stays: points near the hull of its outline keep their place
            hull = cv2.convexHull(t2.astype(np.float32))
            edge = np.array([abs(cv2.pointPolygonTest(hull, (float(x), float(y)), True)) for x, y in t2])
            move = np.clip(edge / max(self.silhouette_band * size, 1e-6) - 1.0, 0.0, 1.0) * self.shape_transfer
        dest3 = t3 + move[:, None] * (posed - t3)
        dest = dest3[:, :2]
        # triangles facing the camera in the target's pose (the shipped triangulation is counter-clockwise on a
        # frontal face)
        area = signed_areas(dest, tri)
        facing = area > 0.05
        order = np.nonzero(facing)[0]
        depth = dest3[tri[order], 2].mean(1)
        order = order[np.argsort(-depth, kind="stable")]  # far first: near triangles are drawn over them
        info["triangles_drawn"] = int(len(order))
        lo = np.floor(np.minimum(dest.min(0), t2.min(0))).astype(int) - 8
        hi = np.ceil(np.maximum(dest.max(0), t2.max(0))).astype(int) + 9
        x0, y0 = max(0, lo[0]), max(0, lo[1])
        x1, y1 = min(w, hi[0]), min(h, hi[1])
        if x1 - x0 < 8 or y1 - y0 < 8 or len(order) < 50:
            return SwapResult(img.copy(), self._hull_mask(t2, h, w), False, "face outside image", info)
        warped, covered = piecewise_affine_warp(donor_image, d3[:, :2], dest, tri[order], (x0, y0, x1, y1))
        region = covered.astype(np.uint8)
        erode = max(1.0, self.erode_scale * size)
        core = cv2.erode(region, _disk(2 * erode + 1))
        if int(core.sum()) < 16:
            return SwapResult(img.copy(), self._hull_mask(t2, h, w), False, "face outside image", info)
        dst = img[y0:y1, x0:x1]
        if self.silhouette_band is None:  # what the new face leaves of the old one is painted from around it
            old = np.zeros(region.shape, np.uint8)
            used = t2[np.unique(tri)]  # the old face's part that the triangles replace
            cv2.fillConvexPoly(old, np.round(cv2.convexHull(used.astype(np.float32)) - (x0, y0)).astype(np.int32), 1)
            rest = old & (1 - core)
            if rest.any():
                dst = fill_from_around(dst, rest.astype(bool), max(2.0, 0.06 * size))
                img = img.copy()
                img[y0:y1, x0:x1] = dst
        if self.color_match:
            skin = core.copy()
            local = dest - (x0, y0)
            for part in (EYE_A, EYE_B, LIPS):
                cv2.fillPoly(skin, [np.round(local[list(part)]).astype(np.int32)], 0)
            warped = _color_transfer(warped, dst, skin.astype(bool), self.max_color_gain)
        out, mask = blend_into(img, (x0, y0), warped, core, max(2.0, self.feather_scale * size), size, self, info)
        info["moved_px"] = float(np.abs(dest - t2).max())
        return SwapResult(out, mask, True, None, info)

    def swap_face(self, target_image: np.ndarray, box: tuple[float, float, float, float], eyes: np.ndarray | None,
                  donor_image: np.ndarray, donor_landmarks68: np.ndarray, donor_key: object = None) -> SwapResult:
        """Fit both meshes (the donor's once per ``donor_key``) and swap; never raises on awkward faces."""
        img = np.ascontiguousarray(target_image)
        target = face_mesh(img, box, eyes)
        key = donor_key if donor_key is not None else hash(np.asarray(donor_landmarks68).tobytes())
        donor, tri = self.donor_mesh(key, donor_image, donor_landmarks68)
        return self.swap_mesh(img, target, donor_image, donor, tri)

    @staticmethod
    def _hull_mask(pts: np.ndarray, h: int, w: int) -> np.ndarray:
        mask = np.zeros((h, w), np.float32)
        if np.isfinite(pts).all():
            cv2.fillConvexPoly(mask, _hull(pts), 1.0)
        return mask

