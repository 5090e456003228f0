"""Hiding a face without swapping it (blur, pixelate, mask), and the debug overlay of what was done."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

if TYPE_CHECKING:
    from perface.anonymize.report import FaceRecord

Obscure = Literal["blur", "pixelate", "mask"]


def obscure(image: np.ndarray, box: Sequence[float], method: Obscure, scale: float = 1.3) -> np.ndarray:
    """Hide a face region (an ellipse around the scaled box) by heavy blur, pixelation or a flat mask."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    rx, ry = max(2.0, (x2 - x1) * scale / 2), max(2.0, (y2 - y1) * scale / 2)
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
