"""Offline face swapping: replace a target face with a donor face, driven by 68-point landmarks.

Why: anonymization by face replacement keeps a photo natural-looking (unlike blur) while removing the
identity-bearing appearance. Everything here is classical image processing (OpenCV + numpy): no
network, no learned weights beyond the landmark model.

Pipeline of :class:`ClassicSwapper` (all work is done in a region of interest around the target face):

1. sanity checks: face size (inter-ocular / eye-to-mouth distance), yaw estimated from landmark asymmetry;
2. optional mirroring of the donor when that brings its yaw closer to the target's;
3. extra forehead points extrapolated above the brows, so the forehead is covered too;
4. piecewise-affine warp of the donor onto the target geometry, with the inner features moved to the
   donor's proportions (``shape_transfer``) and the jaw and face contour too (``outline``: the photo around the
   face is warped with the contour, out to a fixed anchor ring, so no old jaw line shows); one fixed
   triangulation (Delaunay of a symmetric template face, so topology never depends on noisy or
   coincident landmarks), rasterized to a triangle-index map and turned into a single ``cv2.remap``;
5. colour transfer (mean/std in LAB over the target's skin) so the donor takes the target's tone;
6. Poisson blending (``cv2.seamlessClone`` NORMAL_CLONE, on a reflect-padded crop so faces touching
   the border work, solved at reduced resolution for large faces) with a feathered alpha on top; its
   correction, which carries the target's shading into the face, fades towards the centre (``membrane``);
   falls back to a plain feathered alpha blend when seamlessClone fails.

Adding another swapper (e.g. a neural ONNX model with user-supplied weights): write a class with a
``name`` attribute and a ``swap(target_image, target_landmarks68, donor_image, donor_landmarks68)``
method returning :class:`SwapResult` (align with ``perface.face.landmarks.landmarks5_from_68`` to the
model's template, run it with ``onnxruntime``, paste back with a feathered mask, and report
``ok=False`` with a reason instead of raising on unusable faces), then call
``register_swapper("myname", factory)``; ``get_swapper("myname", **kwargs)`` calls ``factory(**kwargs)``.
Weights must be given by the user (path argument), never downloaded.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import cv2
import numpy as np

from perface.face.landmarks import IBUG68_MIRROR, inter_ocular_distance

__all__ = [
    "ClassicSwapper",
    "FaceSwapper",
    "SwapResult",
    "available_swappers",
    "estimate_yaw",
    "forehead_points",
    "get_swapper",
    "piecewise_affine_warp",
    "register_swapper",
    "swap_many",
    "template_triangles",
]

# Brow points that get a forehead point extrapolated above them (symmetric under mirroring).
_FOREHEAD_FROM = np.array([17, 19, 21, 22, 24, 26], dtype=np.intp)
_FOREHEAD_WEIGHT = np.array([0.72, 0.95, 1.0, 1.0, 0.95, 0.72], dtype=np.float64)
# The outer points of the extended set, in order around the face: jaw contour 0-16, then forehead right to left.
_BORDER = np.concatenate([np.arange(17), 68 + np.arange(len(_FOREHEAD_FROM))[::-1]])
# Mirror permutation for the extended (68 + forehead) point set.
_EXT_MIRROR = np.concatenate([IBUG68_MIRROR, 68 + np.arange(len(_FOREHEAD_FROM))[::-1]])

# Symmetric template face (iBUG 68 order, eye centres 40 units apart): the symmetrized landmarks of
# skimage's astronaut image (public domain, NASA). Used only for the triangulation's topology; the
# smiling, open mouth keeps upper and lower inner lips apart so the mouth gets its own triangles.
_TEMPLATE68 = np.array(
    [[7.2, 42.6], [8.2, 53.2], [10.0, 63.8], [11.4, 74.3], [14.6, 84.9], [21.0, 94.1], [29.8, 101.0],
     [39.4, 107.9], [50.0, 109.3], [60.6, 107.9], [70.2, 101.0], [79.0, 94.1], [85.4, 84.9],
     [88.6, 74.3], [90.0, 63.8], [91.8, 53.2], [92.8, 42.6], [13.7, 33.9], [18.7, 28.4], [26.1, 27.4],
     [33.4, 27.9], [40.3, 30.7], [59.7, 30.7], [66.6, 27.9], [73.9, 27.4], [81.3, 28.4], [86.3, 33.9],
     [50.0, 39.4], [50.0, 47.7], [50.0, 55.0], [50.0, 62.4], [40.8, 66.5], [44.9, 67.4], [50.0, 68.8],
     [55.1, 67.4], [59.2, 66.5], [22.4, 39.8], [27.0, 37.1], [33.0, 37.1], [38.0, 41.7], [32.5, 42.1],
     [27.0, 42.1], [62.0, 41.7], [67.0, 37.1], [73.0, 37.1], [77.6, 39.8], [73.0, 42.1], [67.5, 42.1],
     [29.3, 74.3], [37.1, 73.9], [44.5, 73.9], [50.0, 75.2], [55.5, 73.9], [62.9, 73.9], [70.7, 74.3],
     [63.8, 84.0], [56.0, 88.1], [50.0, 89.0], [44.0, 88.1], [36.2, 84.0], [32.1, 75.7], [44.5, 77.5],
     [50.0, 78.0], [55.5, 77.5], [67.9, 75.7], [55.5, 83.1], [50.0, 83.5], [44.5, 83.1]],
    dtype=np.float64,
)  # fmt: skip

_TRI_LOCK = threading.Lock()
_TRI_CACHE: dict[str, np.ndarray] = {}


@dataclass
class SwapResult:
    """Outcome of one swap.

    ``image``: the output (RGB uint8, same shape as the target). When ``ok`` is False it is the
    unmodified target and ``mask`` marks the face region the caller should obscure instead (all zeros
    if the landmarks were unusable). ``mask``: (H, W) float32 in 0..1, the alpha of the replaced region.
    With ``outline`` the photo around the face, out to the anchor ring, is warped smoothly too (outside ``mask``).
    ``info``: diagnostics (yaw estimates, blend actually used, whether the donor was mirrored...).
    """

    image: np.ndarray
    mask: np.ndarray
    ok: bool
    reason: str | None = None
    info: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class FaceSwapper(Protocol):
    """Anything that can paste a donor face onto a target face given both faces' 68 landmarks."""

    name: str

    def swap(
        self,
        target_image: np.ndarray,
        target_landmarks68: np.ndarray,
        donor_image: np.ndarray,
        donor_landmarks68: np.ndarray,
    ) -> SwapResult: ...


# --------------------------------------------------------------------------------------------- geometry


def _eye_centres(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)


def estimate_yaw(lm68: np.ndarray) -> float:
    """Rough yaw in degrees from landmark asymmetry (positive: nose turned towards image right).

    The nose tip is projected on the eye axis and compared with the left and right jaw contour
    (points 0-2 and 14-16): r = (d_left - d_right) / (d_left + d_right) and yaw = atan(r). r = 0 is
    frontal; r = 1 puts the nose tip on the far contour (45 on this scale). A heuristic scale, not
    calibrated degrees: it is monotonic in the true yaw and cheap. On synthetic test faces, swaps from a
    frontal donor look plausible up to about 30 on this scale; at 35-40 the squeezed far side shows.
    """
    lm = np.asarray(lm68, dtype=np.float64)
    el, er = _eye_centres(lm)
    axis = er - el
    n = np.linalg.norm(axis)
    if n < 1e-6:
        return 90.0
    axis /= n
    left = float(np.mean(lm[0:3] @ axis))
    right = float(np.mean(lm[14:17] @ axis))
    nose = float(lm[30] @ axis)
    width = right - left
    if width <= 1e-6:
        return 90.0
    r = ((nose - left) - (right - nose)) / width
    return float(math.degrees(math.atan(r)))


def forehead_points(lm68: np.ndarray, extent: float = 0.4) -> np.ndarray:
    """Six points above the brows, ``extent`` x the brow-to-nose-base height higher (face thirds:
    hairline-to-brow is about brow-to-nose-base, so 1.0 reaches a typical hairline). Returns (6, 2)."""
    lm = np.asarray(lm68, dtype=np.float64)
    el, er = _eye_centres(lm)
    ex = er - el
    ex /= max(float(np.linalg.norm(ex)), 1e-6)
    up = np.array([ex[1], -ex[0]])
    if up @ ((el + er) / 2 - lm[8]) < 0:
        up = -up
    brows = lm[_FOREHEAD_FROM]
    height = float(up @ (brows.mean(axis=0) - lm[33]))
    height = max(height, 0.5 * float(np.linalg.norm(er - el)))
    return brows + up[None, :] * (extent * height * _FOREHEAD_WEIGHT)[:, None]


def _extended(lm68: np.ndarray, extent: float) -> np.ndarray:
    return np.vstack([lm68, forehead_points(lm68, extent)])


def _delaunay(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles (as index triples) of distinct 2-D points, via cv2.Subdiv2D."""
    pts = np.asarray(points, dtype=np.float64)
    lo = pts.min(axis=0) - 10
    hi = pts.max(axis=0) + 10
    sub = cv2.Subdiv2D((int(lo[0]), int(lo[1]), int(hi[0] - lo[0]) + 1, int(hi[1] - lo[1]) + 1))
    for p in pts:
        sub.insert((float(p[0]), float(p[1])))
    tris = []
    for t in sub.getTriangleList().reshape(-1, 3, 2):
        d = np.linalg.norm(pts[None, :, :] - t[:, None, :], axis=2)
        idx = d.argmin(axis=1)
        if d[np.arange(3), idx].max() < 1e-3 and len(set(idx.tolist())) == 3:
            tris.append(sorted(idx.tolist()))
    return np.array(sorted(tris), dtype=np.intp)


def template_triangles(extent: float = 0.4) -> np.ndarray:
    """Fixed (T, 3) triangulation of the 68 + 6 forehead points, from a symmetric template face."""
    return _cached_triangles(f"{extent:.4f}", lambda: _extended(_TEMPLATE68, extent))


def _cached_triangles(key: str, points: Callable[[], np.ndarray]) -> np.ndarray:
    """Delaunay triangles of ``points()``, computed once per key (thread-safe) and then reused."""
    tri = _TRI_CACHE.get(key)
    if tri is None:
        with _TRI_LOCK:
            tri = _TRI_CACHE.get(key)
            if tri is None:
                tri = _delaunay(points())
                _TRI_CACHE[key] = tri
    return tri


def piecewise_affine_warp(
    src_image: np.ndarray,
    src_points: np.ndarray,
    dst_points: np.ndarray,
    triangles: np.ndarray,
    roi: tuple[int, int, int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``src_image`` so that ``src_points`` land on ``dst_points`` (destination image coordinates),
    triangle by triangle, rendering only the destination box ``roi`` = (x0, y0, x1, y1).

    One triangle-index map + one ``cv2.remap`` (faster than ~100 warpAffine calls). Returns the warped
    crop (roi height, roi width, C) and a bool coverage mask (pixels inside some destination triangle).
    """
    x0, y0, x1, y1 = roi
    h, w = y1 - y0, x1 - x0
    src_pts = np.asarray(src_points, dtype=np.float64)
    dst_pts = np.asarray(dst_points, dtype=np.float64) - np.array([x0, y0], dtype=np.float64)
    tri = np.asarray(triangles, dtype=np.intp)
    d = dst_pts[tri]  # (T, 3, 2)
    s = src_pts[tri]
    mat = np.concatenate([d, np.ones((len(tri), 3, 1))], axis=2)  # (T, 3, 3)
    det = np.linalg.det(mat)
    good = np.abs(det) > 1e-6
    # Row k + 1 of the table holds triangle k's destination->source affine as (ax, bx, cx, ay, by, cy);
    # row 0 (outside every triangle) maps to (-1, -1).
    table = np.zeros((len(tri) + 1, 6), dtype=np.float64)
    table[0, [2, 5]] = -1.0
    if good.any():
        coef = np.linalg.solve(mat[good], s[good])  # [x y 1] @ coef -> source (x, y)
        table[1:][good] = coef.transpose(0, 2, 1).reshape(-1, 6)

    index = np.zeros((h, w), dtype=np.int32)
    shift = 4
    scaled = np.round(d * (1 << shift)).astype(np.int32)
    for k in np.nonzero(good)[0]:
        cv2.fillConvexPoly(index, scaled[k], int(k + 1), lineType=cv2.LINE_8, shift=shift)

    g = np.take(table.astype(np.float32), index, axis=0)  # (h, w, 6)
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    map_x = g[..., 0] * xs
    map_x += g[..., 1] * ys
    map_x += g[..., 2]
    map_y = g[..., 3] * xs
    map_y += g[..., 4] * ys
    map_y += g[..., 5]
    warped = cv2.remap(src_image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return warped, index > 0


# ------------------------------------------------------------------------------------------ colour/blend


def _color_transfer(src: np.ndarray, ref: np.ndarray, region: np.ndarray, max_gain: float) -> np.ndarray:
    """Reinhard-style mean/std transfer in LAB: make ``src`` statistics inside ``region`` match ``ref``.

    The transfer is per-channel affine on 8-bit LAB, so it is applied as a lookup table (fast)."""
    m = region.astype(np.uint8)
    if cv2.countNonZero(m) < 20:
        return src
    s_lab = cv2.cvtColor(src, cv2.COLOR_RGB2LAB)
    r_lab = cv2.cvtColor(ref, cv2.COLOR_RGB2LAB)
    s_mu, s_sd = (v.ravel() for v in cv2.meanStdDev(s_lab, mask=m))
    r_mu, r_sd = (v.ravel() for v in cv2.meanStdDev(r_lab, mask=m))
    gain = np.clip((r_sd + 1e-3) / (s_sd + 1e-3), 1.0 / max_gain, max_gain)
    levels = np.arange(256, dtype=np.float64)[:, None]
    lut = np.clip((levels - s_mu) * gain + r_mu + 0.5, 0, 255).astype(np.uint8).reshape(256, 1, 3)
    return cv2.cvtColor(cv2.LUT(s_lab, lut), cv2.COLOR_LAB2RGB)


def skin_lightness(image: np.ndarray, landmarks68: np.ndarray) -> float | None:
    """Median LAB lightness (8-bit, 0-255) of a face's skin: inside the 68-point hull, without eyes, brows, mouth.

    Why: the colour transfer bridges moderate differences in skin tone, but a large one (a dark donor on a pale
    face) greys the eyes and brows; the anonymizer uses this to prefer donors it can blend. None if no skin shows.
    """
    lm = np.asarray(landmarks68, dtype=np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        return None
    h, w = image.shape[:2]
    x0, y0 = np.clip(np.floor(lm.min(0)).astype(int), 0, [w, h])
    x1, y1 = np.clip(np.ceil(lm.max(0)).astype(int) + 1, 0, [w, h])
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    local = lm - [x0, y0]
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    cv2.fillConvexPoly(mask, _hull(local), 1)
    for sl in (slice(17, 22), slice(22, 27), slice(36, 42), slice(42, 48), slice(48, 60)):
        cv2.fillConvexPoly(mask, _hull(local[sl]), 0)
    crop = np.ascontiguousarray(image[y0:y1, x0:x1, :3])
    values = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB)[..., 0][mask.astype(bool)]
    return float(np.median(values)) if values.size >= 20 else None


def _poisson(src: np.ndarray, dst: np.ndarray, mask: np.ndarray, max_px: int) -> np.ndarray:
    """seamlessClone (NORMAL_CLONE) of ``src`` into ``dst`` where ``mask`` (uint8 0/255), same-size crops.

    Pads with reflection so the mask never touches the border. The Poisson solution is ``src`` plus a
    smooth membrane, so for big crops the membrane is solved at reduced resolution and upsampled.
    Raises cv2.error on failure (the caller falls back to feathering).
    """
    h, w = mask.shape
    scale = min(1.0, max_px / max(h, w))
    if scale < 1.0:
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        s_small = cv2.resize(src, size, interpolation=cv2.INTER_AREA)
        d_small = cv2.resize(dst, size, interpolation=cv2.INTER_AREA)
        m_small = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
        m_small = np.where(m_small > 127, 255, 0).astype(np.uint8)
    else:
        s_small, d_small, m_small = src, dst, mask
    if not m_small.any():
        raise cv2.error("empty mask")
    pad = 4
    sp = cv2.copyMakeBorder(s_small, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    dp = cv2.copyMakeBorder(d_small, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    mp = cv2.copyMakeBorder(m_small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    bx, by, bw, bh = cv2.boundingRect(mp)
    center = (bx + bw // 2, by + bh // 2)
    cloned = cv2.seamlessClone(sp, dp, mp, center, cv2.NORMAL_CLONE)[pad:-pad, pad:-pad]
    if scale == 1.0:
        return cloned
    membrane = cloned.astype(np.float32) - s_small.astype(np.float32)
    membrane = cv2.resize(membrane, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(src.astype(np.float32) + membrane, 0, 255).astype(np.uint8)


def _disk(diameter: float) -> np.ndarray:
    """Elliptic structuring element with an odd diameter of at least 1 px."""
    k = max(1, int(round(diameter)))
    k += 1 - k % 2
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


def _hull(points: np.ndarray) -> np.ndarray:
    """Integer convex hull of 2-D points, for cv2.fillConvexPoly."""
    return np.round(cv2.convexHull(np.asarray(points, dtype=np.float32))).astype(np.int32)


# --------------------------------------------------------------------------------------------- swapper


@dataclass
class ClassicSwapper:
    """Landmark-driven piecewise-affine face swap with colour transfer and Poisson blending.

    ``blend``: "seamless" (Poisson, falls back to "feather" on failure) or "feather" (alpha only).
    ``feather_px`` / ``erode_px``: soft-edge width and mask shrink in pixels; None = scale with the
    face (``feather_scale`` / ``erode_scale`` x face size; the Poisson blend already matches the target
    at the mask edge, so a thin edge suffices and leaves less of the target face behind).
    ``shape_transfer``: how far (0..1) the brows, eyes, nose and mouth move from the target's positions
    to the donor's proportions (the jaw line moves only with ``outline``); a texture-only swap (0) keeps the target's
    facial geometry, which recognizers use. ``forehead``: how far above the brows the swapped region
    reaches (fraction of the brow-to-nose-base height). ``min_face_px``: minimum face size
    (larger of inter-ocular and eye-to-mouth distance, in px).
    ``max_yaw_deg``: limit for :func:`estimate_yaw` of target and donor. ``mirror_donor``: "auto"
    mirrors the donor when that matches the target's yaw better. ``keep_target_mouth``: keep the
    target's mouth interior (teeth) when its mouth is clearly more open than the donor's, instead of
    stretching the donor's closed lips over it. ``outline``: how far (0..1) the jaw and face contour also move
    to the donor's (a head shape is an identity cue the inner features do not carry); the photo around the face is
    warped with it, smoothly, out to ``outline_ring`` x the face's radius past the contour, where it is anchored,
    so the new jaw line leaves no holes or seams. ``membrane``: share of the Poisson blend's correction (a smooth
    field that carries the target's shading and colours into the face) kept at the face's centre; it is kept whole
    at the region's edge, where it hides the seam, and fades to ``membrane`` over ``membrane_ramp`` x the face size
    inwards, so the donor's own shading shows where recognizers look. ``poisson_max_px``: crop side above which the
    Poisson membrane is solved at reduced resolution (speed).
    """

    blend: Literal["seamless", "feather"] = "seamless"
    color_match: bool = True
    feather_px: float | None = None
    erode_px: float | None = None
    forehead: float = 0.4
    min_face_px: float = 20.0
    # 40 rather than 32: on a CelebA tuning draw (150 probes, not the reported one) 10 more faces were
    # swapped instead of blurred, with re-identification unchanged (see docs/benchmarks.md).
    max_yaw_deg: float = 40.0
    mirror_donor: Literal["auto", "never", "always"] = "auto"
    keep_target_mouth: bool = True
    max_color_gain: float = 1.3
    poisson_max_px: int = 96
    # shape_transfer 1.0, outline 1.0 and membrane 0 (instead of 0.8, 0 and 1): on the seed-1 tuning draw FaceRes, the
    # never-consulted judge, still verified 10% of outputs instead of 30% (3% with MobileFace consulted too), with
    # as many faces swapped (docs/benchmarks.md, "Where FaceRes still re-identifies").
    shape_transfer: float = 1.0
    outline: float = 1.0
    outline_ring: float = 0.5
    membrane: float = 0.0
    membrane_ramp: float = 0.3
    feather_scale: float = 0.05
    erode_scale: float = 0.02
    name: str = field(default="classic", init=False)

    def __post_init__(self) -> None:
        if self.blend not in ("seamless", "feather"):
            raise ValueError(f"blend must be 'seamless' or 'feather', got {self.blend!r}")
        if self.mirror_donor not in ("auto", "never", "always"):
            raise ValueError(f"mirror_donor must be 'auto', 'never' or 'always', got {self.mirror_donor!r}")
        if not 0.0 <= self.forehead <= 1.5:
            raise ValueError(f"forehead must be within 0..1.5, got {self.forehead}")
        if not 0.0 <= self.shape_transfer <= 1.0:
            raise ValueError("shape_transfer must be within 0..1")
        if not 0.0 <= self.outline <= 1.0:
            raise ValueError(f"outline must be within 0..1, got {self.outline}")
        if not 0.0 <= self.membrane <= 1.0:
            raise ValueError(f"membrane must be within 0..1, got {self.membrane}")
        if not 0.0 < self.membrane_ramp <= 2.0:
            raise ValueError(f"membrane_ramp must be within (0, 2], got {self.membrane_ramp}")
        if not 0.1 <= self.outline_ring <= 2.0:
            raise ValueError(f"outline_ring must be within 0.1..2, got {self.outline_ring}")

    # -- helpers
    @staticmethod
    def _check_image(img: np.ndarray, what: str) -> np.ndarray:
        a = np.asarray(img)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ValueError(f"{what} must be (H, W, 3) uint8 RGB, got {a.shape} {a.dtype}")
        return np.ascontiguousarray(a)

    @staticmethod
    def _check_lm(lm: np.ndarray) -> np.ndarray | None:
        a = np.asarray(lm, dtype=np.float64)
        if a.shape != (68, 2) or not np.isfinite(a).all():
            return None
        return a

    def _fail(self, image: np.ndarray, reason: str, lm: np.ndarray | None, info: dict) -> SwapResult:
        mask = np.zeros(image.shape[:2], dtype=np.float32)
        if lm is not None:
            cv2.fillConvexPoly(mask, _hull(_extended(lm, self.forehead)), 1.0)
        return SwapResult(image=image.copy(), mask=mask, ok=False, reason=reason, info=info)

    # -- main entry point
    def swap(
        self,
        target_image: np.ndarray,
        target_landmarks68: np.ndarray,
        donor_image: np.ndarray,
        donor_landmarks68: np.ndarray,
    ) -> SwapResult:
        """Paste the donor face onto the target face. Never raises on awkward faces: see SwapResult."""
        target = self._check_image(target_image, "target_image")
        donor = self._check_image(donor_image, "donor_image")
        t_lm = self._check_lm(target_landmarks68)
        d_lm = self._check_lm(donor_landmarks68)
        info: dict[str, object] = {}
        if t_lm is None:
            return self._fail(target, "invalid target landmarks", None, info)
        if d_lm is None:
            return self._fail(target, "invalid donor landmarks", t_lm, info)
        iod = inter_ocular_distance(t_lm)
        size = _face_size(t_lm)
        info.update(inter_ocular_px=iod, face_size_px=size)
        if size < self.min_face_px:
            return self._fail(target, "too small", t_lm, info)
        if inter_ocular_distance(d_lm) < 4:
            return self._fail(target, "invalid donor landmarks", t_lm, info)
        slack = 0.1 * _face_size(d_lm)
        dh, dw = donor.shape[:2]
        if (
            (d_lm < -slack).any()
            or (d_lm[:, 0] > dw - 1 + slack).any()
            or (d_lm[:, 1] > dh - 1 + slack).any()
        ):
            return self._fail(target, "donor face cut off", t_lm, info)
        t_yaw, d_yaw = estimate_yaw(t_lm), estimate_yaw(d_lm)
        info.update(target_yaw=t_yaw, donor_yaw=d_yaw)
        if abs(t_yaw) > self.max_yaw_deg:
            return self._fail(target, "extreme pose", t_lm, info)
        if abs(d_yaw) > self.max_yaw_deg:
            return self._fail(target, "extreme donor pose", t_lm, info)

        t_pts = _extended(t_lm, self.forehead)
        d_pts = _extended(d_lm, self.forehead)
        mirror = self.mirror_donor == "always" or (
            self.mirror_donor == "auto" and abs(-d_yaw - t_yaw) + 5.0 < abs(d_yaw - t_yaw)
        )
        if mirror:
            donor = np.ascontiguousarray(donor[:, ::-1])
            d_pts = d_pts[_EXT_MIRROR].copy()
            d_pts[:, 0] = donor.shape[1] - 1 - d_pts[:, 0]
        info["donor_mirrored"] = bool(mirror)

        keep_mouth = self.keep_target_mouth and _mouth_open(t_lm) > _mouth_open(d_lm) + 0.03
        dest = _transfer_shape(t_pts, d_pts, self.shape_transfer, keep_mouth, self.outline)
        h, w = target.shape[:2]
        feather = self.feather_px if self.feather_px is not None else max(2.0, self.feather_scale * size)
        erode = self.erode_px if self.erode_px is not None else max(1.0, self.erode_scale * size)
        margin = int(math.ceil(feather * 2 + 4))
        reach = np.vstack([t_pts, dest])
        lo = np.floor(reach.min(axis=0)).astype(int) - margin
        hi = np.ceil(reach.max(axis=0)).astype(int) + margin + 1
        x0, y0 = max(0, lo[0]), max(0, lo[1])
        x1, y1 = min(w, hi[0]), min(h, hi[1])
        if x1 - x0 < 4 or y1 - y0 < 4:
            return self._fail(target, "face outside image", t_lm, info)

        unchanged = target  # what a failed swap returns
        if self.outline > 0.0:  # move the photo's contour with the face, so the new jaw line has no old one beside it
            target = _warp_outline(target, t_pts, dest, self.forehead, self.outline_ring)
            info["outline_moved_px"] = float(np.abs(dest[:17] - t_pts[:17]).max())
        tri = template_triangles(self.forehead)
        warped, covered = piecewise_affine_warp(donor, d_pts, dest, tri, (x0, y0, x1, y1))
        off = np.array([x0, y0], dtype=np.float64)
        local = dest - off if self.outline > 0.0 else t_pts - off

        # Region to replace: convex hull of all points, within the warp's coverage.
        region = np.zeros(covered.shape, dtype=np.uint8)
        cv2.fillConvexPoly(region, _hull(local), 1)
        region &= covered.astype(np.uint8)
        if keep_mouth:
            inner = np.round(local[60:68]).astype(np.int32)
            cv2.fillPoly(region, [inner], 0)
            info["kept_target_mouth"] = True
        if int(region.sum()) < 16:
            return self._fail(unchanged, "face outside image", t_lm, info)
        core = cv2.erode(region, _disk(2 * erode + 1))
        if int(core.sum()) < 16:
            core = region

        dst = target[y0:y1, x0:x1]
        if self.color_match:
            skin = np.zeros(covered.shape, dtype=np.uint8)
            cv2.fillConvexPoly(skin, _hull(local[:68]), 1)
            for sl in (slice(36, 42), slice(42, 48), slice(48, 60)):
                cv2.fillConvexPoly(skin, np.round(local[sl]).astype(np.int32), 0)
            skin = cv2.erode(skin & core, np.ones((3, 3), np.uint8)).astype(bool)
            warped = _color_transfer(warped, dst, skin, self.max_color_gain)

        out, mask = blend_into(target, (x0, y0), warped, core, feather, size, self, info)
        return SwapResult(image=out, mask=mask, ok=True, reason=None, info=info)


class BlendSettings(Protocol):
    """A swapper's blend options, as :func:`blend_into` reads them."""

    blend: str
    membrane: float
    membrane_ramp: float
    poisson_max_px: int


def blend_into(image: np.ndarray, origin: tuple[int, int], warped: np.ndarray, core: np.ndarray, feather: float,
               size: float, settings: BlendSettings, info: dict[str, object]) -> tuple[np.ndarray, np.ndarray]:
    """The warped donor crop blended into a copy of ``image`` at ``origin`` (x0, y0) by :func:`blend_face` with a
    swapper's ``settings`` (its blend, membrane, membrane_ramp per face size, poisson_max_px); returns the output
    and its full-size alpha, and records the blend used in ``info``. Shared by the classic and the mesh swap."""
    x0, y0 = origin
    y1, x1 = y0 + warped.shape[0], x0 + warped.shape[1]
    patch, alpha, used = blend_face(warped, image[y0:y1, x0:x1], core, feather,
                                    seamless=settings.blend == "seamless", membrane=settings.membrane,
                                    membrane_ramp=settings.membrane_ramp * size,
                                    poisson_max_px=settings.poisson_max_px)
    info["blend_used"] = used
    out = image.copy()
    out[y0:y1, x0:x1] = patch
    mask = np.zeros(image.shape[:2], dtype=np.float32)
    mask[y0:y1, x0:x1] = alpha
    return out, mask


def blend_face(warped: np.ndarray, dst: np.ndarray, core: np.ndarray, feather: float, *, seamless: bool,
               membrane: float, membrane_ramp: float, poisson_max_px: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The warped donor blended into ``dst`` over ``core`` (uint8 0/1): Poisson, its membrane faded to ``membrane``
    over ``membrane_ramp`` px inwards (falls back to feathering), or a feathered alpha. Returns the blended crop,
    the alpha used and which blend ran. Shared by the classic and the mesh swap."""
    blended = warped
    used = "feather"
    if seamless:
        try:
            blended = _poisson(warped, dst, core * 255, poisson_max_px)
            used = "seamless"
            if membrane < 1.0:
                blended = _fade_membrane(warped, blended, core, membrane, membrane_ramp)
        except cv2.error:
            used = "feather (seamless failed)"
    sigma = max(0.5, feather / 2.0)
    core_f = core.astype(np.float32)
    if used == "seamless":
        # clone == target on the mask boundary, so a soft edge inside the mask only hides residue
        alpha = cv2.GaussianBlur(core_f, (0, 0), sigma) * core_f
    else:
        shrink = cv2.erode(core, _disk(2 * sigma))  # keep the soft edge inside the warped region
        alpha = cv2.GaussianBlur(shrink.astype(np.float32), (0, 0), sigma) * core_f
    return cv2.blendLinear(blended, dst, alpha, 1.0 - alpha), alpha, used


def _fade_membrane(warped: np.ndarray, cloned: np.ndarray, core: np.ndarray, keep: float, ramp: float
                   ) -> np.ndarray:
    """The Poisson result with its correction (``cloned - warped``) kept whole at the mask's edge and faded to
    ``keep`` of it from ``ramp`` px inside the edge on."""
    inside = cv2.distanceTransform(core.astype(np.uint8), cv2.DIST_L2, 3)
    weight = 1.0 - (1.0 - keep) * np.clip(inside / max(ramp, 1.0), 0.0, 1.0)
    w = warped.astype(np.float32)
    return np.clip(w + weight[..., None] * (cloned.astype(np.float32) - w), 0, 255).astype(np.uint8)


def _transfer_shape(t_pts: np.ndarray, d_pts: np.ndarray, amount: float, keep_mouth: bool,
                    outline: float = 0.0) -> np.ndarray:
    """Target points with the inner features (brows, eyes, nose, and the mouth unless the target's open
    mouth is kept) moved ``amount`` of the way to the donor's, after a similarity fit of the donor's
    landmarks onto the target's. The forehead points stay put, and the jaw line too unless ``outline`` > 0;
    moving the features carries the donor's proportions (eye spacing, nose length, mouth width) into
    the output, identity cues that a texture-only swap would keep from the target. ``outline`` > 0 moves the jaw
    and face contour (points 0-16) that far to the donor's too."""
    if amount <= 0.0 and outline <= 0.0:
        return t_pts
    m, _ = cv2.estimateAffinePartial2D(d_pts[:68].astype(np.float32), t_pts[:68].astype(np.float32),
                                       method=cv2.LMEDS)
    if m is None:
        return t_pts
    aligned = d_pts @ m[:, :2].T + m[:, 2]
    stop = 48 if keep_mouth else 68
    dest = t_pts.copy()
    dest[17:stop] += amount * (aligned[17:stop] - t_pts[17:stop])
    dest[:17] += outline * (aligned[:17] - t_pts[:17])
    return dest


def _outline_anchors(pts: np.ndarray, ring: float) -> np.ndarray:
    """Fixed points ``ring`` x the way from the face's centre past each contour and forehead point (23 points)."""
    border = pts[_BORDER]
    centre = pts[:68].mean(axis=0)
    return centre + (border - centre) * (1.0 + ring)


def _outline_triangles(extent: float, ring: float) -> np.ndarray:
    """Fixed triangulation of the 68 + 6 forehead points and their anchor ring, from the template face."""
    def points() -> np.ndarray:
        ext = _extended(_TEMPLATE68, extent)
        return np.vstack([ext, _outline_anchors(ext, ring)])

    return _cached_triangles(f"outline {extent:.4f} {ring:.4f}", points)


def _warp_outline(image: np.ndarray, t_pts: np.ndarray, dest: np.ndarray, extent: float, ring: float) -> np.ndarray:
    """The photo warped piecewise-affinely so that the face's points move from ``t_pts`` to ``dest``, out to an
    anchor ring that stays put: the surroundings follow the new contour continuously, and nothing past the ring
    changes."""
    anchors = _outline_anchors(t_pts, ring)
    src = np.vstack([t_pts, anchors])
    dst = np.vstack([dest, anchors])
    h, w = image.shape[:2]
    lo = np.clip(np.floor(dst.min(axis=0)).astype(int), 0, [w, h])
    hi = np.clip(np.ceil(dst.max(axis=0)).astype(int) + 1, 0, [w, h])
    if (hi - lo < 2).any():
        return image
    warped, covered = piecewise_affine_warp(image, src, dst, _outline_triangles(extent, ring),
                                            (lo[0], lo[1], hi[0], hi[1]))
    out = image.copy()
    roi = out[lo[1]:hi[1], lo[0]:hi[0]]
    np.copyto(roi, warped, where=covered[..., None])  # as roi[covered] = warped[covered], 2.6x faster
    return out


def _face_size(lm: np.ndarray) -> float:
    """Face size in pixels: the larger of the inter-ocular and eye-to-mouth distances. Both are about
    equal on frontal faces; taking the larger keeps the measure stable when yaw shrinks the eye distance
    or pitch shrinks the eye-to-mouth one."""
    eyes = (lm[36:42].mean(axis=0) + lm[42:48].mean(axis=0)) / 2
    mouth = (lm[48] + lm[54]) / 2
    return max(inter_ocular_distance(lm), float(np.linalg.norm(mouth - eyes)))


def _mouth_open(lm: np.ndarray) -> float:
    """Inner-lip polygon area relative to the squared face size (0 for a closed mouth)."""
    inner = lm[60:68]
    x, y = inner[:, 0], inner[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
    return area / max(_face_size(lm) ** 2, 1e-6)


# -------------------------------------------------------------------------------------- many + registry


def swap_many(
    image: np.ndarray,
    faces: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    swapper: FaceSwapper | None = None,
) -> tuple[np.ndarray, list[SwapResult]]:
    """Swap several faces in sequence: ``faces`` holds (target_lm68, donor_image, donor_lm68) tuples,
    with target landmarks in ``image`` coordinates. Returns the final image and one result per face
    (each ``result.image`` is the state after that face; failed faces leave the image unchanged and
    should be obscured by the caller using ``result.mask``)."""
    sw = swapper if swapper is not None else get_swapper("classic")
    current = np.asarray(image)
    results: list[SwapResult] = []
    for t_lm, d_img, d_lm in faces:
        res = sw.swap(current, t_lm, d_img, d_lm)
        results.append(res)
        current = res.image
    return current, results


_REGISTRY: dict[str, Callable[..., FaceSwapper]] = {"classic": ClassicSwapper}


def register_swapper(name: str, factory: Callable[..., FaceSwapper]) -> None:
    """Make ``factory`` available as ``get_swapper(name, **kwargs)`` (overrides an existing name)."""
    _REGISTRY[name] = factory


def available_swappers() -> list[str]:
    """Names accepted by :func:`get_swapper`."""
    return sorted(_REGISTRY)


def get_swapper(name: str = "classic", **kwargs: object) -> FaceSwapper:
    """Instantiate a registered swapper by name; kwargs go to its factory (e.g. ClassicSwapper fields)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown swapper {name!r}; available: {available_swappers()}") from None
    return factory(**kwargs)
