"""LBPH: local binary pattern histograms (Ahonen et al. 2006), a hand-crafted texture recognizer.

A weak recognizer of another family than the networks: uniform 8-neighbour LBP codes, one normalised
histogram per cell of a grid over the ArcFace-aligned crop, compared by chi-square distance. It matches
texture anywhere in the crop (hairline, fringe, background), which is why it stays as a baseline.
"""

from __future__ import annotations

import cv2
import numpy as np


def _lbp_codes(gray: np.ndarray) -> np.ndarray:
    """8-neighbour, radius-1 LBP codes mapped to the 59 uniform-pattern bins."""
    g = gray.astype(np.int16)
    c = g[1:-1, 1:-1]
    shifts = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]
    code = np.zeros_like(c, dtype=np.uint8)
    for bit, (dy, dx) in enumerate(shifts):
        nb = g[1 + dy : g.shape[0] - 1 + dy, 1 + dx : g.shape[1] - 1 + dx]
        code |= ((nb >= c).astype(np.uint8) << bit)
    return _UNIFORM[code]


def _uniform_table() -> np.ndarray:
    table = np.full(256, 58, dtype=np.uint8)
    k = 0
    for v in range(256):
        bits = [(v >> i) & 1 for i in range(8)]
        transitions = sum(bits[i] != bits[(i + 1) % 8] for i in range(8))
        if transitions <= 2:
            table[v] = k
            k += 1
    return table


_UNIFORM = _uniform_table()


def lbph_descriptor(crop_rgb: np.ndarray, grid: int = 8) -> np.ndarray:
    """Concatenated, normalised uniform-LBP histograms over a grid x grid tiling of an aligned crop."""
    gray = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY)
    gray = cv2.equalizeHist(gray)
    codes = _lbp_codes(gray)
    h, w = codes.shape
    hists = []
    for i in range(grid):
        for j in range(grid):
            cell = codes[i * h // grid : (i + 1) * h // grid, j * w // grid : (j + 1) * w // grid]
            hist = np.bincount(cell.ravel(), minlength=59).astype(np.float32)
            hists.append(hist / max(1.0, hist.sum()))
    return np.concatenate(hists)


def chi_square_nearest(probes: np.ndarray, gallery: np.ndarray, chunk: int = 4) -> np.ndarray:
    """Index of the chi-square-nearest gallery row for every probe row (chunked: memory ~ chunk x gallery x d)."""
    out = np.empty(len(probes), dtype=np.int64)
    for s in range(0, len(probes), chunk):
        p = probes[s : s + chunk, None, :]
        d = ((p - gallery[None]) ** 2 / (p + gallery[None] + 1e-9)).sum(-1)
        out[s : s + chunk] = d.argmin(1)
    return out


def chi_square_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise chi-square distance between two (N, d) arrays of LBPH descriptors (or two vectors)."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    return ((a - b) ** 2 / (a + b + 1e-9)).sum(-1)
