"""Hiding a face without swapping it (blur, pixelate, mask), and the debug overlay of what was done."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

if TYPE_CHECKING:
    from perface.anonymize.report import FaceRecord

Obscure = Literal["blur", "pixelate", "mask"]


def _ellipse(box: Sequence[float], scale: float) -> tuple[float, float, float, float]:
    """Centre and radii of the hidden ellipse: around ``box`` scaled by ``scale``, at least 2 px each way."""
    x1, y1, x2, y2 = box
    return (x1 + x2) / 2, (y1 + y2) / 2, max(2.0, (x2 - x1) * scale / 2), max(2.0, (y2 - y1) * scale / 2)


def obscure(image: np.ndarray, box: Sequence[float], method: Obscure, scale: float = 1.3) -> np.ndarray:
    """Hide a face region (an ellipse around the scaled box) by heavy blur, pixelation or a flat mask."""
    h, w = image.shape[:2]
    cx, cy, rx, ry = _ellipse(box, scale)
    bx1, by1 = max(0, int(cx - rx)), max(0, int(cy - ry))
    bx2, by2 = min(w, int(np.ceil(cx + rx))), min(h, int(np.ceil(cy + ry)))
    if bx2 <= bx1 or by2 <= by1:
        return image
    out = image.copy()
    roi = out[by1:by2, bx1:bx2]
    if method == "blur":
        k = max(3, int(max(roi.shape[:2]) // 3) | 1)
        hidden = cv2.GaussianBlur(cv2.GaussianBlur(roi, (k, k), 0), (k, k), 0)
        hidden = cv2.blur(hidden, (max(1, k // 2), max(1, k // 2)))
    elif method == "pixelate":
        cells = 6
        small = cv2.resize(roi, (cells, max(1, int(cells * roi.shape[0] / max(1, roi.shape[1])))),
                           interpolation=cv2.INTER_AREA)
        hidden = cv2.resize(small, (roi.shape[1], roi.shape[0]), interpolation=cv2.INTER_NEAREST)
    elif method == "mask":
        hidden = np.zeros_like(roi)
    else:
        raise ValueError(f"unknown obscuring method {method!r}")
    mask = np.zeros(roi.shape[:2], np.uint8)
    cv2.ellipse(mask, (int(cx - bx1), int(cy - by1)), (int(rx), int(ry)), 0, 0, 360, 255, -1)
    roi[mask > 0] = hidden[mask > 0]
    return out


FAST_SIGMA = 8.0  # above this (faces over 200 px wide), the soft edge's blurs run on a 4x smaller copy


def _blur(image: np.ndarray, sigma: float, fast: bool) -> np.ndarray:
    """Gaussian blur; ``fast``: on a copy shrunk to sigma 4 and enlarged back, 10x quicker on a 400 px face and a
    close enough copy of an already heavy blur."""
    if not fast:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    h, w = image.shape[:2]
    f = sigma / 4.0
    small = cv2.resize(image, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(cv2.GaussianBlur(small, (0, 0), 4.0), (w, h), interpolation=cv2.INTER_LINEAR)


def obscure_soft(image: np.ndarray, box: Sequence[float], method: Obscure, scale: float = 1.3, outer: float = 1.15,
                   feather: float = 0.15, light: float = 0.04) -> np.ndarray:
    """:func:`obscure` with a soft edge: its ellipse, hidden as before (the outermost 6% smoothed into the rim), then a
    rim that fades to a light blur (sigma ``light`` times the box width) at ``outer`` times the radii and to the photo
    ``feather`` further, so that no hard-edged oval frames a swap laid over it. Nothing inside the ellipse is shown."""
    hidden = obscure(image, box, method, scale)
    h, w = image.shape[:2]
    cx, cy, rx, ry = _ellipse(box, scale)
    reach = outer + feather
    bx1, by1 = max(0, int(cx - rx * reach)), max(0, int(cy - ry * reach))
    bx2, by2 = min(w, int(np.ceil(cx + rx * reach))), min(h, int(np.ceil(cy + ry * reach)))
    if bx2 <= bx1 or by2 <= by1:
        return hidden
    sigma = max(1.0, light * (box[2] - box[0]))
    fast = sigma > FAST_SIGMA  # faces over 200 px wide: every blur on a shrunk copy
    pad = int(np.ceil(6 * sigma))  # the blurs read this far past the region
    px1, py1, px2, py2 = max(0, bx1 - pad), max(0, by1 - pad), min(w, bx2 + pad), min(h, by2 + pad)
    inner = (slice(by1 - py1, by2 - py1), slice(bx1 - px1, bx2 - px1))
    soft = _blur(image[py1:py2, px1:px2], sigma, fast)[inner].astype(np.float32)
    # the heavy blur spread past the ellipse, so the rim fades from the oval's own colours
    spread = _blur(hidden[py1:py2, px1:px2], 2 * sigma, fast)[inner].astype(np.float32)
    yy, xx = np.mgrid[by1:by2, bx1:bx2].astype(np.float32)
    r = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    heavy = np.clip((outer - r) / max(1e-6, outer - 1.0), 0.0, 1.0)[..., None]
    shown = np.clip((reach - r) / max(1e-6, feather), 0.0, 1.0)[..., None]
    rim = (soft * (1.0 - heavy) + spread * heavy) * shown + image[by1:by2, bx1:bx2] * (1.0 - shown)
    region = hidden[by1:by2, bx1:bx2].astype(np.float32)
    outside = r > 1.0
    region[outside] = rim[outside]
    # the ellipse's own edge smoothed too (both sides of it are blurred already), so no line is left there
    seam = np.clip(1.0 - np.abs(r - 1.0) / 0.06, 0.0, 1.0)[..., None]
    region = region * (1.0 - seam) + _blur(region, sigma, fast) * seam
    out = hidden.copy()
    out[by1:by2, bx1:bx2] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    return out


def draw_overlay(image: np.ndarray, faces: Sequence[FaceRecord]) -> np.ndarray:
    """Boxes, detector scores and the method used, drawn on the (already anonymized) output."""
    out = image.copy()
    colours = {"swap": (40, 200, 40), "blur": (230, 160, 0), "pixelate": (230, 160, 0), "mask": (230, 160, 0)}
    for f in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in f.box)
        c = colours.get(f.method, (255, 0, 0))
        cv2.rectangle(out, (x1, y1), (x2, y2), c, 2)
        cv2.putText(out, f"{f.score:.2f} {f.method}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, c, 1,
                    cv2.LINE_AA)
    return out
