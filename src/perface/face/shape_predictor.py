"""dlib's regression-tree shape predictor (Kazemi and Sullivan's cascade) run in NumPy, from dlib's own ``.dat``.

Why: dlib spends about 0.55 s of CPU reading ``shape_predictor_68_face_landmarks.dat`` (16.3 million floats,
each stored as a variable-length mantissa and exponent), a third of a one-photo ``perface anonymize``. Here
the file is decoded once into plain arrays, cached beside the exported ONNX graphs, and memory-mapped after
that (forked workers share the pages). The points are dlib's, bit for bit: the same similarity transform, the
same float32 arithmetic in the same order, the same rounding (checked against dlib in the tests and on 318
CelebA faces in the commit that added this module). No library runs these models without dlib's reader.

Format (dlib ``shape_predictor.h``, ``serialize.h``, ``matrix.h``): version 1, the initial shape (a float
column), the forests (per cascade level: trees of ``splits`` = (idx1, idx2, thresh) and ``leaf_values``),
the anchor indexes and the pixel deltas of each level. Integers are one control byte (bit 7 negative, low
four bits the byte count) and the magnitude little-endian; floats a mantissa and an exponent so written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

__all__ = ["ShapePredictor", "ShapeFormatError", "decode_dat", "load_shape_predictor", "probe_boxes"]

_ARRAYS = ("initial", "leaves", "split_idx", "split_thresh", "anchors", "deltas")
_LOCK = threading.Lock()


class ShapeFormatError(ValueError):
    """The file is not a dlib shape predictor this reader understands."""


def _varint_lengths(b: np.ndarray) -> bytes:
    """For every byte position, the length of a float (mantissa and exponent integers) starting there."""
    out = bytearray(len(b))
    step = 1 << 22
    for a in range(0, len(b), step):
        z = min(len(b), a + step)
        m = b[a:z] & 15
        second = np.minimum(np.arange(a, z, dtype=np.int64) + 1 + m, len(b) - 1)
        out[a:z] = (2 + m + (b[second] & 15)).astype(np.uint8).tobytes()
    return bytes(out)


def _compact_ints(b: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The integers written at positions ``at`` and the positions just after them."""
    control = b[at].astype(np.int64)
    n = control & 15
    value = np.zeros(len(at), np.int64)
    for j in range(int(n.max(initial=0))):
        value |= np.where(n > j, b[np.minimum(at + 1 + j, len(b) - 1)].astype(np.int64), 0) << (8 * j)
    return np.where(control & 0x80, -value, value), at + 1 + n


def _floats_at(b: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The floats (mantissa, exponent) written at positions ``starts``, as float64, a million at a time."""
    out = np.empty(len(starts), np.float64)
    step = 1 << 20
    for a in range(0, len(starts), step):
        mantissa, after = _compact_ints(b, starts[a:a + step])
        exponent, _ = _compact_ints(b, after)
        out[a:a + step] = np.ldexp(mantissa.astype(np.float64), exponent)
    return out


def decode_dat(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The arrays of a dlib shape predictor file: ``initial`` (2P,), ``leaves`` (levels, trees, leaves, 2P),
    ``split_idx`` (levels, trees, splits, 2), ``split_thresh`` (levels, trees, splits), ``anchors`` and
    ``deltas`` (levels, pixels[, 2]). Raises :class:`ShapeFormatError` on anything else."""
    try:
        return _decode(path)
    except ShapeFormatError:
        raise
    except (IndexError, ValueError, OverflowError) as exc:  # a length or layout the checks did not catch
        raise ShapeFormatError(f"{path}: {type(exc).__name__}: {exc}") from None


def _decode(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    buf = Path(path).read_bytes()
    b = np.frombuffer(buf, np.uint8)
    pos = 0

    def rint() -> int:
        nonlocal pos
        if pos >= len(buf):
            raise ShapeFormatError(f"{path}: truncated")
        c = buf[pos]
        n = c & 15
        v = int.from_bytes(buf[pos + 1:pos + 1 + n], "little")
        pos += 1 + n
        return -v if c & 0x80 else v

    def rfloat() -> float:
        m = rint()
        return float(np.ldexp(float(m), rint()))

    def count() -> int:  # a length: each element takes at least one byte
        n = rint()
        if not 0 <= n <= len(buf) - pos:
            raise ShapeFormatError(f"{path}: a length of {n} with {len(buf) - pos} bytes left")
        return n

    lengths = _varint_lengths(b)
    mark = bytearray(len(buf))  # the start of every float of a matrix

    def matrix() -> int:
        nonlocal pos
        nr, nc = -rint(), -rint()
        if not 0 <= nr <= len(buf) - pos or nc != 1:
            raise ShapeFormatError(f"{path}: expected a float column, got {nr} x {nc}")
        p = pos
        for _ in range(nr):
            mark[p] = 1
            p += lengths[p]
        if p > len(buf):
            raise ShapeFormatError(f"{path}: truncated")
        pos = p
        return nr

    if rint() != 1:
        raise ShapeFormatError(f"{path}: not a version 1 dlib shape predictor")
    dim = matrix()
    levels = count()
    splits: list[tuple[int, int, float]] = []
    shape: tuple[int, int, int] | None = None
    for _ in range(levels):
        trees = count()
        for _ in range(trees):
            ns = count()
            splits.extend((rint(), rint(), rfloat()) for _ in range(ns))
            nl = count()
            if nl != ns + 1 or any(matrix() != dim for _ in range(nl)):
                raise ShapeFormatError(f"{path}: a tree that is not complete or leaves of another size")
            if shape not in (None, (trees, ns, nl)):
                raise ShapeFormatError(f"{path}: trees of different sizes")
            shape = (trees, ns, nl)
    anchors = [[rint() for _ in range(count())] for _ in range(count())]
    deltas = [[(rfloat(), rfloat()) for _ in range(count())] for _ in range(count())]
    if pos != len(buf) or shape is None or len(anchors) != levels or len(deltas) != levels:
        raise ShapeFormatError(f"{path}: unexpected layout")
    starts = np.flatnonzero(np.frombuffer(bytes(mark), np.uint8))
    values = _floats_at(b, starts)
    floats = values.astype(np.float32)
    if not np.array_equal(floats, values):  # dlib wrote float32 values: each must be one exactly
        raise ShapeFormatError(f"{path}: values that are not float32")
    trees, ns, nl = shape
    thresh = np.array([s[2] for s in splits], np.float64)
    delta = np.array(deltas, np.float64)
    if not (np.array_equal(thresh.astype(np.float32), thresh) and np.array_equal(delta.astype(np.float32), delta)):
        raise ShapeFormatError(f"{path}: values that are not float32")
    out = {
        "initial": floats[:dim],
        "leaves": floats[dim:].reshape(levels, trees, nl, dim),
        "split_idx": np.array([s[:2] for s in splits], np.int64).reshape(levels, trees, ns, 2),
        "split_thresh": thresh.astype(np.float32).reshape(levels, trees, ns),
        "anchors": np.array(anchors, np.int64),
        "deltas": delta.astype(np.float32),
    }
    if (out["split_idx"] < 0).any() or (out["split_idx"] >= out["anchors"].shape[1]).any() \
            or (out["anchors"] < 0).any() or (out["anchors"] >= dim // 2).any():
        raise ShapeFormatError(f"{path}: indexes out of range")
    return out


class ShapePredictor:
    """dlib's ``shape_predictor`` on NumPy arrays: ``predictor(image, (left, top, right, bottom))`` gives the
    (P, 2) int64 points dlib gives for that ``dlib.rectangle`` on that RGB (or grey) uint8 image."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        leaves = arrays["leaves"]
        self.levels, trees, nl, dim = leaves.shape
        ns = arrays["split_idx"].shape[2]
        if nl != ns + 1 or nl & (nl - 1) or ns > 20:  # the leaf table below has 2 ** splits entries
            raise ShapeFormatError(f"trees of {ns} splits and {nl} leaves: not complete binary trees of depth <= 4")
        self.initial = np.asarray(arrays["initial"], np.float32)
        self._leaves = [np.asarray(leaves[c]).reshape(-1, dim) for c in range(self.levels)]  # memory-mapped rows
        self._i1 = [np.ascontiguousarray(arrays["split_idx"][c, :, :, 0]) for c in range(self.levels)]
        self._i2 = [np.ascontiguousarray(arrays["split_idx"][c, :, :, 1]) for c in range(self.levels)]
        self._th = [np.ascontiguousarray(arrays["split_thresh"][c]) for c in range(self.levels)]
        self._anchors = np.asarray(arrays["anchors"])
        # coordinates as rows (x row, y row): NumPy's inner loops then run along the pixels, not over pairs
        self._dx = [np.ascontiguousarray(arrays["deltas"][c, :, 0])[None] for c in range(self.levels)]
        self._dy = [np.ascontiguousarray(arrays["deltas"][c, :, 1])[None] for c in range(self.levels)]
        ref = self.initial.reshape(-1, 2).astype(np.float64)
        centred = ref - ref.mean(0)
        self._ref = centred  # Umeyama's source points, centred
        self._ref_var = float((centred ** 2).sum(1).mean())
        self._first_leaf = np.arange(trees) * nl
        # every split of a tree is evaluated at once; the leaf reached for each pattern of outcomes (bit j:
        # split j goes left) is looked up, which walks the tree as dlib does (left 2i + 1, right 2i + 2)
        codes = np.arange(1 << ns)
        node = np.zeros(len(codes), np.int64)
        for _ in range(nl.bit_length() - 1):
            node = 2 * node + 2 - ((codes >> node) & 1)
        self._leaf_of = node - ns
        self._bits = (1 << np.arange(ns)).astype(np.int64)

    def _similarity(self, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dlib's ``find_similarity_transform`` from the initial to the current shape (P, 2), float32 [[a, -b],
        [b, a]] as its two columns (2, 1); Umeyama's closed form for 2-D points, equal to its SVD route."""
        to = current.astype(np.float64)
        cov = (to - to.mean(0)).T @ self._ref / len(to)
        s = 1.0 / self._ref_var if self._ref_var != 0 else 1.0
        a, b = (cov[0, 0] + cov[1, 1]) * s, (cov[1, 0] - cov[0, 1]) * s
        m = np.array([[a, b], [-b, a]], np.float32)
        return m[0][:, None], m[1][:, None]

    def __call__(self, image: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"image must be (H, W, 3) or (H, W) uint8, got {image.shape} {image.dtype}")
        left, top, right, bottom = (int(v) for v in rect)
        h, w = image.shape[:2]
        flat = image.reshape(-1)
        channels = 1 if image.ndim == 2 else 3
        scale = np.array([[float(right - left)], [float(bottom - top)]])  # dlib's unnormalizing transform
        offset = np.array([[float(left)], [float(top)]])
        current = self.initial.copy()
        for c in range(self.levels):
            pts = current.reshape(-1, 2)
            m0, m1 = self._similarity(pts)
            p = (m0 * self._dx[c] + m1 * self._dy[c]) + pts.T[:, self._anchors[c]]  # float32, dlib's order
            q = np.floor((p.astype(np.float64) * scale + offset) + 0.5).astype(np.int64)
            inside = (q[0].view(np.uint64) < w) & (q[1].view(np.uint64) < h)  # negatives wrap to huge
            at = np.where(inside, q[1] * w + q[0], 0) * channels
            grey = (flat[at].astype(np.uint16) + flat[at + 1] + flat[at + 2]) // 3 if channels == 3 else flat[at]
            values = np.where(inside, grey, 0).astype(np.float32)
            left_of = (values[self._i1[c]] - values[self._i2[c]]) > self._th[c]
            rows = self._leaves[c][self._first_leaf + self._leaf_of[left_of @ self._bits]]
            rows[0] += current
            current = np.add.reduce(rows, axis=0)  # row after row: dlib's sequential float32 sum
        pts = current.reshape(-1, 2).astype(np.float64)
        return np.floor((pts * scale.T + offset.T) + 0.5).astype(np.int64)


def _cache_folder(path: Path) -> Path:
    from perface.backbones.runtime import cache_dir, files_key

    return cache_dir() / f"shape-{path.stem}-{files_key([path])}"


def _write_cache(arrays: dict[str, np.ndarray], folder: Path) -> None:
    """Write the arrays as .npy files into ``folder`` atomically (a temporary folder renamed into place); the
    temporary folders of decodes killed at least an hour ago are removed first."""
    import time

    for old in folder.parent.glob(".shape-*"):
        with contextlib.suppress(OSError):
            if old.is_dir() and time.time() - old.stat().st_mtime > 3600:
                shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        for name in _ARRAYS:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(arrays[name]))
        os.replace(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (folder / "deltas.npy").is_file():
            raise


def _read_cache(folder: Path) -> ShapePredictor | None:
    """The predictor of a cache folder; None (and the folder removed) when it is incomplete or damaged."""
    if not (folder / "deltas.npy").is_file():
        return None
    try:
        return ShapePredictor({name: np.load(folder / f"{name}.npy", mmap_mode="r" if name == "leaves" else None)
                               for name in _ARRAYS})
    except (OSError, ValueError, KeyError, IndexError):
        shutil.rmtree(folder, ignore_errors=True)
        return None


def load_shape_predictor(path: str | os.PathLike[str]) -> ShapePredictor:
    """The predictor of a dlib ``.dat`` file: decoded once (about 3 s for the 68-point file) into a cache,
    memory-mapped after (2 ms)."""
    path = Path(path)
    with _LOCK:
        folder = _cache_folder(path)
        cached = _read_cache(folder)
        if cached is not None:
            return cached
        arrays = decode_dat(path)
        try:
            _write_cache(arrays, folder)
        except OSError:  # an unwritable cache: run from the decoded arrays in this process
            return ShapePredictor(arrays)
        return _read_cache(folder) or ShapePredictor(arrays)


def probe_boxes(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes to compare the port with dlib on: each detected face's box, a shifted and resized copy, a shrunk one,
    and boxes cut by the image's borders (used by the tests and ``benchmarks/shape_predictor.py``)."""
    from perface.face.detect import detect

    h, w = image.shape[:2]
    out = []
    for f in detect(image):
        x1, y1, x2, y2 = (int(round(v)) for v in f.box)
        out += [(x1, y1, x2, y2), (x1 - 9, y1 + 4, x2 + 13, y2 - 3), (x1 + 5, y1 + 5, x2 - 5, y2 - 5)]
    return out + [(-40, -30, 60, 70), (w - 50, h - 60, w + 40, h + 30), (w // 3, -80, w // 3 + 90, 10)]
