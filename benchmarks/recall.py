"""Detector recall where a miss is a leak: small faces in large images, crowds, grids, narrow strips,
faces turned 90/180/270 degrees, partly covered or cut by the border; side by side with deface.

Faces: UTKFace 200 px crops and CelebA in-the-wild photos from ../shared/data, each with exactly one
clear face (its box from the upright detector on the source, nothing else scoring >= 0.25), cut as a
square patch 1.8 times the face and pasted with a soft elliptical edge (the face box itself fully
opaque) onto face-free backgrounds (scikit-image's non-face pictures, tiled), scaled so the face's
shorter box side is 12 to 300 px, rotated, covered by a grey bar over 30 % of the face, or pushed
25-50 % over the image border. Ground truth is the pasted face box (clipped to the image); a face
counts as found when a detection has IoU >= 0.3 with it. Everything is drawn from a seeded
generator; the images are written as JPEG (quality 95) to a temp folder and both detectors read the
same files. deface runs through benchmarks/recall_deface.py in its own venv ($DEFACE_PYTHON, default
/tmp/defacevenv/bin/python) with its defaults (native resolution, threshold 0.2, backend "auto").

    python benchmarks/recall.py [--configs before,upright,default,exhaustive] [--scale 1.0]

Writes docs/benchmarks/recall.md through _common.write_fragment.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from _common import REPO, shared_data, write_fragment
from PIL import Image

from perface.face.detect import CenterFaceDetector, DetectConfig, detect_with_unsure, get_detector, plan_views
from perface.face.io import read_image

BUCKETS = [(12, 16), (16, 24), (24, 40), (40, 80), (80, 301)]
BUCKET_NAMES = ["12-16", "16-24", "24-40", "40-80", "80-300"]
IOU = 0.3

#: the settings compared; "before" is the detector as it was (one pass at 640 px, the ONNX file as shipped)
CONFIGS = {
    "before": DetectConfig(tiles=False, rotations=(0,), recheck_threshold=None, unsure_threshold=None,
                           precision="fp32"),
    "tiles": DetectConfig(rotations=(0,), recheck_threshold=None),
    "upright": DetectConfig(rotations=(0,)),
    "default": DetectConfig(),
    "rot0.7": DetectConfig(rotation_scale=0.7),
    "exhaustive": DetectConfig(rotation_scale=1.0),
    "recheck0.1": DetectConfig(recheck_threshold=0.1),
    "upsample2": DetectConfig(upsample=2.0),
    "thr0.4": DetectConfig(threshold=0.4),
    "rot0.7thr0.4": DetectConfig(threshold=0.4, rotation_scale=0.7),
    "rot1thr0.4": DetectConfig(threshold=0.4, rotation_scale=1.0),
    "recheck0.03thr0.4": DetectConfig(threshold=0.4, recheck_threshold=0.03),
    "thr0.4u0.2": DetectConfig(threshold=0.4, unsure_threshold=0.2),
    "nosmall": DetectConfig(small_rotation_scale=None),
    "nosmallthr0.4": DetectConfig(threshold=0.4, small_rotation_scale=None),
    "fp32": DetectConfig(precision="fp32"),
    "fp32thr0.4": DetectConfig(threshold=0.4, precision="fp32"),
    "int8thr0.4": DetectConfig(threshold=0.4, precision="int8"),
    "mixedthr0.4": DetectConfig(threshold=0.4, precision="mixed"),
    "fp32thr0.4noraise": DetectConfig(threshold=0.4, precision="fp32", recheck_raise=False,
                                      border_unsure_threshold=None, cross_rotation_overlap=None),
    "thr0.4nocross": DetectConfig(threshold=0.4, cross_rotation_overlap=None),
    "thr0.4edge0.15": DetectConfig(threshold=0.4, border_unsure_threshold=0.15),
    "thr0.4noedge": DetectConfig(threshold=0.4, border_unsure_threshold=None),
}
SETTINGS = {
    "before": "the detector before this change: one pass at 640 px, the ONNX file as shipped",
    "tiles": "+ native-resolution tiles, upright only, no re-check",
    "upright": "+ the zoomed re-check of candidates, upright only",
    "default": "`DetectConfig()`: + turned copies at half resolution (at full resolution when the upright passes "
               "find a face under 48 px) and the re-check at 4 orientations",
    "rot0.7": "default with turned copies at 0.7 of the upright resolution",
    "exhaustive": "default with turned copies at full resolution (`rotation_scale=1`)",
    "recheck0.1": "default with `recheck_threshold=0.1`",
    "upsample2": "default with tiles at 2x (`upsample=2`)",
    "thr0.4": "default with `threshold=0.4` (the anonymizer's)",
    "rot0.7thr0.4": "thr0.4 with turned copies at 0.7 of the upright resolution",
    "rot1thr0.4": "thr0.4 with turned copies at full resolution (`rotation_scale=1`)",
    "recheck0.03thr0.4": "thr0.4 with `recheck_threshold=0.03`",
    "nosmall": "default without the full-resolution turned copies for scenes with small faces "
               "(`small_rotation_scale=None`: the default before)",
    "nosmallthr0.4": "nosmall at threshold 0.4 (the anonymizer's default before)",
    "thr0.4u0.2": "thr0.4 with unsure regions from 0.2 (deface's threshold) rather than 0.25",
    "fp32": "default with CenterFace's float graph everywhere (`precision=\"fp32\"`)",
    "fp32thr0.4": "fp32 at threshold 0.4",
    "int8thr0.4": "thr0.4 with the 8-bit graph everywhere (`precision=\"int8\"`)",
    "mixedthr0.4": "thr0.4 with the 8-bit graph for the upright passes and the float one for the turned copies and "
                   "the re-check (`precision=\"mixed\"`)",
    "thr0.4edge0.15": "thr0.4 with candidates cut by the image border unsure from 0.15 rather than 0.2",
    "thr0.4noedge": "thr0.4 without the lower unsure threshold for candidates cut by the border "
                    "(`border_unsure_threshold=None`)",
    "fp32thr0.4noraise": "fp32thr0.4 without the re-check's raised scores (`recheck_raise=False`) and the border "
                         "rule (`border_unsure_threshold=None`) nor the cross-rotation rule: the anonymizer's "
                         "setting before 2026-12-04 20:00",
    "thr0.4nocross": "thr0.4 without the cross-rotation rule (`cross_rotation_overlap=None`: a weaker box read at "
                     "another orientation, lying 0.3 or more inside a face, is no longer dropped): the "
                     "anonymizer's setting before 2026-12-05 12:55",
    "deface": "deface 1.5.0 with its defaults (native resolution, threshold 0.2)",
}

NEGATIVE_PICTURES = ("coffee", "chelsea", "rocket", "coins", "hubble_deep_field", "immunohistochemistry", "logo",
                     "page", "text", "brick", "grass", "gravel", "retina", "moon", "clock", "colorwheel", "cell",
                     "stereo_motorcycle")


@dataclass
class Source:
    patch: np.ndarray  # square RGB patch
    box: np.ndarray  # face box (x1, y1, x2, y2) in the patch


@dataclass
class Truth:
    box: tuple[float, float, float, float]  # clipped to the image
    size: float  # shorter side of the whole (upright) face box
    rotation: int
    occluded: bool
    cut: bool


@dataclass
class Sample:
    name: str
    group: str
    image: np.ndarray
    truths: list[Truth] = field(default_factory=list)


# --- sources and backgrounds -------------------------------------------------------------------------------


def _square_patch(img: np.ndarray, box: np.ndarray, factor: float = 1.8) -> Source:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = int(round(factor * max(box[2] - box[0], box[3] - box[1])))
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    h, w = img.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
    big = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT_101) if pad else img
    patch = big[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side].copy()
    return Source(patch, np.array([box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0], np.float32))


def load_sources(root: Path, n: int, rng: np.random.Generator) -> list[Source]:
    """About n single-face patches, half UTKFace crops and half CelebA photos (picked with the float graph, no
    re-check and no border rule, so that the benchmark's images do not change with the detector's defaults)."""
    cfg = DetectConfig(tiles=False, rotations=(0,), unsure_threshold=0.25, precision="fp32", recheck_threshold=None,
                       border_unsure_threshold=None)
    utk = sorted((root / "utkface" / "images").glob("*.jpg"))
    rows = list(csv.DictReader((root / "celeba" / "labels.csv").read_text().splitlines()))
    celeba = [root / "celeba" / "images" / r["image"] for r in rows]
    out: list[Source] = []
    for files in (utk, celeba):
        got = 0
        for i in rng.permutation(len(files)):
            if got >= n // 2:
                break
            try:
                img = read_image(files[i])
            except Exception:  # noqa: BLE001 - a malformed file: take another
                continue
            faces, unsure = detect_with_unsure(img, cfg)
            if len(faces) != 1 or unsure or faces[0].score < 0.8 or faces[0].size < 40:
                continue
            out.append(_square_patch(img, np.array(faces[0].box, np.float32)))
            got += 1
    return out


def negative_pictures() -> list[np.ndarray]:
    from skimage import data as skd

    out = []
    for name in NEGATIVE_PICTURES:
        try:
            x = getattr(skd, name)()
        except Exception:  # noqa: BLE001 - a picture that needs a download: skip it
            continue
        x = np.asarray(x[0] if isinstance(x, tuple) else x)
        if x.ndim == 2:
            x = np.stack([x] * 3, -1)
        x = x[..., :3]
        out.append(x.astype(np.uint8) if x.dtype == np.uint8 else (x * 255).astype(np.uint8))
    return out


def background(h: int, w: int, pictures: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A face-free canvas tiled with scaled pictures."""
    canvas = np.zeros((h, w, 3), np.uint8)
    cell = int(rng.integers(300, 700))
    for y in range(0, h, cell):
        for x in range(0, w, cell):
            p = pictures[int(rng.integers(len(pictures)))]
            p = cv2.resize(p, (cell, cell), interpolation=cv2.INTER_AREA if p.shape[0] > cell else cv2.INTER_LINEAR)
            if rng.random() < 0.5:
                p = p[:, ::-1]
            canvas[y : y + cell, x : x + cell] = p[: h - y, : w - x]
    return canvas


# --- pasting -------------------------------------------------------------------------------------------------


def _ellipse_alpha(side: int) -> np.ndarray:
    u = (np.arange(side) + 0.5) / side * 2 - 1
    r = np.sqrt(u[None, :] ** 2 + u[:, None] ** 2)
    return np.clip((1.0 - r) / 0.2, 0, 1)[..., None].astype(np.float32)  # opaque up to radius 0.8


def _rot_box(box: np.ndarray, k: int, w: int, h: int) -> np.ndarray:
    """Box of np.rot90(patch, k) (patch h x w)."""
    x1, y1, x2, y2 = box
    pts = np.array([[x1, y1], [x2, y2]], np.float32)
    if k == 1:
        pts = np.stack([pts[:, 1], w - pts[:, 0]], 1)
    elif k == 2:
        pts = np.stack([w - pts[:, 0], h - pts[:, 1]], 1)
    elif k == 3:
        pts = np.stack([h - pts[:, 1], pts[:, 0]], 1)
    return np.concatenate([pts.min(0), pts.max(0)])


def prepare(src: Source, size: float, rotation: int, occlude: bool, rng: np.random.Generator):
    """(patch, alpha, face box in the patch) for a face of ``size`` px turned by ``rotation``."""
    f = size / float(min(src.box[2] - src.box[0], src.box[3] - src.box[1]))
    side = max(4, int(round(src.patch.shape[0] * f)))
    patch = cv2.resize(src.patch, (side, side), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
    box = src.box * (side / src.patch.shape[0])
    if occlude:
        bh = box[3] - box[1]
        y = box[1] + rng.random() * 0.7 * bh
        patch[int(round(y)) : int(round(y + 0.3 * bh)), int(round(box[0])) : int(round(box[2]))] = 128
    k = (-(rotation // 90)) % 4  # the face is upright in np.rot90(image, rotation // 90)
    patch = np.ascontiguousarray(np.rot90(patch, k))
    return patch, _ellipse_alpha(side), _rot_box(box, k, side, side)


def paste(sample: Sample, patch: np.ndarray, alpha: np.ndarray, box: np.ndarray, x: int, y: int, size: float,
          rotation: int, occluded: bool) -> None:
    img = sample.image
    h, w = img.shape[:2]
    s = patch.shape[0]
    ax0, ay0, ax1, ay1 = max(0, x), max(0, y), min(w, x + s), min(h, y + s)
    if ax1 <= ax0 or ay1 <= ay0:
        return
    p = patch[ay0 - y : ay1 - y, ax0 - x : ax1 - x].astype(np.float32)
    a = alpha[ay0 - y : ay1 - y, ax0 - x : ax1 - x]
    img[ay0:ay1, ax0:ax1] = (a * p + (1 - a) * img[ay0:ay1, ax0:ax1]).astype(np.uint8)
    b = box + np.array([x, y, x, y], np.float32)
    clipped = (max(0.0, b[0]), max(0.0, b[1]), min(float(w), b[2]), min(float(h), b[3]))
    area = (b[2] - b[0]) * (b[3] - b[1])
    vis = max(0.0, clipped[2] - clipped[0]) * max(0.0, clipped[3] - clipped[1])
    if vis < 0.4 * area:
        return  # less than 40 % of the face left in the image: not counted
    sample.truths.append(Truth(tuple(float(v) for v in clipped), size, rotation, occluded, vis < 0.99 * area))


def scatter(sample: Sample, sources: list[Source], n: int, sizes: tuple[float, float], rng: np.random.Generator,
            rotations=(0,), p_occlude: float = 0.0, p_cut: float = 0.0) -> None:
    """Paste up to n faces without overlapping patches (log-uniform sizes)."""
    h, w = sample.image.shape[:2]
    taken: list[tuple[int, int, int, int]] = []
    tries = 0
    while len(taken) < n and tries < 50 * n:
        tries += 1
        size = float(np.exp(rng.uniform(np.log(sizes[0]), np.log(sizes[1]))))
        rot = int(rotations[int(rng.integers(len(rotations)))])
        occ = bool(rng.random() < p_occlude)
        src = sources[int(rng.integers(len(sources)))]
        patch, alpha, box = prepare(src, size, rot, occ, rng)
        s = patch.shape[0]
        if rng.random() < p_cut:  # push 25-50 % of the face over a border
            fw, fh = box[2] - box[0], box[3] - box[1]
            side = int(rng.integers(4))
            t = rng.uniform(0.25, 0.5)
            x = int(rng.integers(0, max(1, w - s))) if side >= 2 else (
                int(-box[0] - t * fw) if side == 0 else int(w - box[2] + t * fw))
            y = int(rng.integers(0, max(1, h - s))) if side < 2 else (
                int(-box[1] - t * fh) if side == 2 else int(h - box[3] + t * fh))
        else:  # a patch larger than a narrow strip is centred across it (its face still fits)
            x = int(rng.integers(0, w - s + 1)) if s <= w else (w - s) // 2
            y = int(rng.integers(0, h - s + 1)) if s <= h else (h - s) // 2
        r = (x, y, x + s, y + s)
        if any(r[0] < q[2] and q[0] < r[2] and r[1] < q[3] and q[1] < r[3] for q in taken):
            continue
        taken.append(r)
        paste(sample, patch, alpha, box, x, y, size, rot, occ)


def grid(sample: Sample, sources: list[Source], rows: int, cols: int, sizes: tuple[float, float],
         rng: np.random.Generator) -> None:
    h, w = sample.image.shape[:2]
    ch, cw = h // rows, w // cols
    for i in range(rows):
        for j in range(cols):
            size = float(np.exp(rng.uniform(np.log(sizes[0]), np.log(sizes[1]))))
            patch, alpha, box = prepare(sources[int(rng.integers(len(sources)))], size, 0, False, rng)
            s = patch.shape[0]
            x = j * cw + (cw - s) // 2 + int(rng.integers(-cw // 8, cw // 8 + 1))
            y = i * ch + (ch - s) // 2 + int(rng.integers(-ch // 8, ch // 8 + 1))
            paste(sample, patch, alpha, box, x, y, size, 0, False)


def build(sources: list[Source], pictures: list[np.ndarray], rng: np.random.Generator, scale: float) -> list[Sample]:
    out: list[Sample] = []

    def new(name, group, h, w):
        s = Sample(name, group, background(h, w, pictures, rng))
        out.append(s)
        return s

    all_rot = (0, 90, 180, 270)
    for i in range(2):  # the user's crowd: 70 faces in a large photo
        scatter(new(f"crowd{i}", "crowd 3000x2000, 70 faces", 2000, 3000), sources, 70, (20, 100), rng)
    grid(new("grid0", "grid 6x6, 12-24 px, 1200x900", 900, 1200), sources, 6, 6, (12, 24), rng)
    grid(new("grid1", "grid 6x6, 16-40 px, 2400x1600", 1600, 2400), sources, 6, 6, (16, 40), rng)
    for i, sz in enumerate((20, 16)):  # one small face in a large photo
        scatter(new(f"tiny{i}", "one 16-20 px face in 3000x2000", 2000, 3000), sources, 1, (sz, sz + 0.01), rng)
    scatter(new("strip0", "narrow strips", 150, 2000), sources, 3, (40, 80), rng)
    scatter(new("strip1", "narrow strips", 2000, 150), sources, 3, (40, 80), rng, rotations=all_rot)
    scatter(new("strip2", "narrow strips", 100, 2000), sources, 3, (24, 50), rng)
    for i in range(int(round(14 * scale))):  # every rotation, size, covered and cut faces
        scatter(new(f"mixed{i}", "mixed 1200x900, 30 faces", 900, 1200), sources, 30, (12, 300), rng,
                rotations=all_rot, p_occlude=0.25, p_cut=0.15)
    for i in range(int(round(12 * scale))):  # turned faces only, none covered or cut
        scatter(new(f"turned{i}", "turned 800x600, 8 faces", 600, 800), sources, 8, (16, 120), rng,
                rotations=(90, 180, 270))
    for i in range(int(round(10 * scale))):  # ordinary photos
        scatter(new(f"photo{i}", "photo 640x480, 2-5 faces", 480, 640), sources, int(rng.integers(2, 6)),
                (24, 200), rng, rotations=all_rot, p_occlude=0.2, p_cut=0.1)
    for i, p in enumerate(pictures):
        out.append(Sample(f"neg{i}", "face-free pictures", p.copy()))
    for i in range(2):
        new(f"negbig{i}", "face-free 3000x2000 mosaics", 2000, 3000)
    return out


# --- scoring -------------------------------------------------------------------------------------------------


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    aa = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    bb = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (aa[:, None] + bb[None, :] - inter)


@dataclass
class Result:
    """Per sample: boxes (N, 4), rotations (N,), unsure boxes, seconds."""

    boxes: np.ndarray
    rots: np.ndarray
    unsure: np.ndarray
    seconds: float
    work: float = float("nan")  # network input pixels / 640x640


def score(samples: list[Sample], results: dict[str, Result], with_unsure: bool = False):
    """Rows of (truth, found, rotation right) over all samples, and extra detections per sample."""
    rows, extra = [], {}
    for s in samples:
        r = results[s.name]
        boxes = np.concatenate([r.boxes, r.unsure]) if with_unsure and len(r.unsure) else r.boxes
        rots = np.concatenate([r.rots, np.full(len(r.unsure), -1)]) if with_unsure and len(r.unsure) else r.rots
        gt = np.array([t.box for t in s.truths], np.float32).reshape(-1, 4)
        m = _iou_matrix(gt, boxes.reshape(-1, 4))
        for i, t in enumerate(s.truths):
            j = int(np.argmax(m[i])) if m.shape[1] else -1
            found = j >= 0 and m[i, j] >= IOU
            rows.append((s, t, found, found and int(rots[j]) == t.rotation))
        extra[s.name] = int((m.max(axis=0) < IOU).sum()) if m.shape[0] else len(boxes)
    return rows, extra


def _recall(rows, pred) -> tuple[int, int]:
    sel = [r for r in rows if pred(r[1])]
    return sum(r[2] for r in sel), len(sel)


def _fmt(k: int, n: int) -> str:
    return f"{100 * k / n:.1f} % ({k}/{n})" if n else "-"


def _bucket(size: float) -> int:
    for i, (a, b) in enumerate(BUCKETS):
        if a <= size < b:
            return i
    return -1


# --- running -------------------------------------------------------------------------------------------------


def run_ours(samples: list[Sample], paths: dict[str, Path], cfg: DetectConfig, before: bool) -> dict[str, Result]:
    det = (CenterFaceDetector(fold_weights=False, precision="fp32") if before
           else get_detector("centerface", cfg.precision))
    img0 = read_image(paths[samples[0].name])
    det.detect_with_unsure(img0, cfg)  # warm-up
    out = {}
    for s in samples:
        img = read_image(paths[s.name])
        stats: dict = {}
        t0 = time.perf_counter()
        faces, unsure = det.detect_with_unsure(img, cfg, stats)
        secs = time.perf_counter() - t0
        faces = [f for f in faces if f.size >= cfg.min_size]
        unsure = [f for f in unsure if f.size >= cfg.min_size]
        out[s.name] = Result(np.array([f.box for f in faces], np.float32).reshape(-1, 4),
                             np.array([f.rotation for f in faces], np.int64),
                             np.array([f.box for f in unsure], np.float32).reshape(-1, 4), secs,
                             stats["work_640"] * (2.0 if before else 1.0))  # the unfolded file runs ~2x slower
    return out


def run_deface(samples: list[Sample], paths: dict[str, Path], tmp: Path) -> tuple[dict[str, Result] | None, str]:
    py = os.environ.get("DEFACE_PYTHON", "/tmp/defacevenv/bin/python")
    if not Path(py).exists():
        return None, f"deface not run: {py} not found (see benchmarks/recall_deface.py)"
    out = tmp / "deface.json"
    subprocess.run([py, str(REPO / "benchmarks" / "recall_deface.py"), *[str(paths[s.name]) for s in samples],
                    "--out", str(out)], check=True, capture_output=True, text=True)
    data = json.loads(out.read_text())
    res = {}
    for s in samples:
        d = data["images"][paths[s.name].name]
        b = np.array([x[:4] for x in d["boxes"]], np.float32).reshape(-1, 4)
        h, w = s.image.shape[:2]
        work = 2.0 * np.ceil(h / 32) * 32 * np.ceil(w / 32) * 32 / 640 / 640
        res[s.name] = Result(b, np.zeros(len(b), np.int64), np.zeros((0, 4), np.float32), d["seconds"], work)
    provs = ", ".join(data["providers"]) or "-"
    return res, (f"deface 1.5.0, backend {data['backend']!r} (onnxruntime providers: {provs}; the Azure one "
                 f"only forwards to the CPU), threshold {data['threshold']}")


def one_face_640_times(reps: int = 3) -> dict[str, float]:
    """Median ms per photo on one-face photos at 640 px (the astronaut and 10 CelebA photos upscaled):
    before, default, upright only; interleaved, so other jobs on the machine weigh on all alike."""
    from _common import celeba_at_640
    from skimage import data as skd

    paths, _ = celeba_at_640(10, start=100)
    imgs = [cv2.resize(skd.astronaut(), (640, 640), interpolation=cv2.INTER_CUBIC)] + [read_image(p) for p in paths]
    old, new = CenterFaceDetector(fold_weights=False, precision="fp32"), get_detector("centerface")
    runs = {"before": (old, CONFIGS["before"]), "default": (new, DetectConfig()),
            "upright": (new, CONFIGS["upright"]), "fp32": (get_detector("centerface", "fp32"), CONFIGS["fp32"])}
    for det, c in runs.values():
        det.detect_with_unsure(imgs[0], c)
    ts: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(reps):
        for img in imgs:
            for key, (det, c) in runs.items():
                t0 = time.perf_counter()
                det.detect_with_unsure(img, c)
                ts[key].append(time.perf_counter() - t0)
    out = {k: float(np.median(v) * 1000) for k, v in ts.items()}
    out["ratio"] = float(np.median(np.array(ts["default"]) / np.array(ts["before"])))
    out["n"] = len(imgs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="before,tiles,upright,default,exhaustive",
                    help=f"comma-separated, from {', '.join(CONFIGS)}")
    ap.add_argument("--scale", type=float, default=0.8, help="fewer (<1) or more mixed/turned/photo images")
    ap.add_argument("--sources", type=int, default=100)
    ap.add_argument("--groups", default="", help="only the image groups whose name holds one of these "
                    "comma-separated words (e.g. mixed,turned: every clean turned face of 16-24 px)")
    ap.add_argument("--no-deface", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print, do not write the fragment")
    ap.add_argument("--note", default="", help="a sentence on the run's conditions (e.g. other jobs on the cores)")
    args = ap.parse_args()
    t_start = time.perf_counter()
    rng = np.random.default_rng(0)
    sources = load_sources(shared_data(), args.sources, rng)
    pictures = negative_pictures()
    samples = build(sources, pictures, rng, args.scale)
    if args.groups:
        samples = [s for s in samples if any(g in s.group for g in args.groups.split(","))]
    tmp = Path(tempfile.mkdtemp(prefix="perface-recall-"))
    paths = {}
    for s in samples:
        paths[s.name] = tmp / f"{s.name}.jpg"
        Image.fromarray(s.image).save(paths[s.name], quality=95)
    n_faces = sum(len(s.truths) for s in samples)
    print(f"{len(samples)} images, {n_faces} faces, {len(sources)} sources in {tmp}", flush=True)

    names = [c for c in args.configs.split(",") if c]
    results: dict[str, dict[str, Result]] = {}
    for name in names:
        t0 = time.perf_counter()
        results[name] = run_ours(samples, paths, CONFIGS[name], before=name == "before")
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    deface_note = "deface not run (--no-deface)"
    if not args.no_deface:
        t0 = time.perf_counter()
        dres, deface_note = run_deface(samples, paths, tmp)
        print(f"deface: {time.perf_counter() - t0:.0f} s; {deface_note}", flush=True)
        if dres is not None:
            results["deface"] = dres
    t640 = one_face_640_times()
    body = report(samples, results, names, deface_note, t640, len(sources), time.perf_counter() - t_start)
    body = (f"Command: `python benchmarks/recall.py --configs {','.join(names)} --scale {args.scale:g} "
            f"--sources {args.sources}{' --groups ' + args.groups if args.groups else ''}`.\n\n"
            + (args.note + "\n\n" if args.note else "") + body)
    if args.no_write:
        print(body)
    else:
        write_fragment("recall", "Detector recall: small, crowded, rotated, covered and cut faces (issue "
                       "\"Fail closed for real\")", body)


def report(samples, results, names, deface_note, t640, n_sources, total_s) -> str:
    faces = [s for s in samples if s.truths]
    negs = [s for s in samples if not s.truths]
    cols = list(results)
    n_faces = sum(len(s.truths) for s in faces)
    L = [f"{len(faces)} generated images with {n_faces} faces pasted from {n_sources} UTKFace / CelebA sources, "
         f"and {len(negs)} face-free images; {deface_note}. A face is found when a detection overlaps its box "
         f"with IoU >= {IOU}; sizes are the shorter side of the face box. PerFace's threshold is 0.5 "
         f"(the anonymizer uses 0.4), deface's 0.2. Whole run: {total_s / 60:.1f} min. Settings:", ""]
    L += [f"- `{c}`: {SETTINGS.get(c, c)}" for c in cols]
    L.append("")
    scored = {c: score(faces, results[c]) for c in cols}
    unsure = {c: score(faces, results[c], with_unsure=True) for c in names}
    L += ["### Recall per face size (all rotations)", "",
          "| setting | " + " | ".join(BUCKET_NAMES) + " | covered 30 % | cut by border | all |",
          "|---|" + "---|" * (len(BUCKETS) + 3)]

    def line(label, rows):
        cells = [_fmt(*_recall(rows, lambda t, i=i: _bucket(t.size) == i)) for i in range(len(BUCKETS))]
        cells += [_fmt(*_recall(rows, lambda t: t.occluded)), _fmt(*_recall(rows, lambda t: t.cut)),
                  _fmt(*_recall(rows, lambda t: True))]
        return f"| {label} | " + " | ".join(cells) + " |"

    for c in cols:
        L.append(line(c, scored[c][0]))
    for c in names:
        if CONFIGS[c].unsure_threshold is not None:
            L.append(line(f"{c} + unsure ({_unsure_band(CONFIGS[c])})", unsure[c][0]))
    L += ["", "### Recall per rotation and size, clean faces (not covered, not cut)", "",
          "\"rotation right\": share of the found faces whose `Face.rotation` is the pasted one.", "",
          "| setting | rotation | " + " | ".join(BUCKET_NAMES) + " | all | rotation right |",
          "|---|---|" + "---|" * (len(BUCKETS) + 2)]
    def rotation_rows(label: str, scored_rows, rotation_right: bool) -> None:
        rows = [r for r in scored_rows if not r[1].occluded and not r[1].cut]
        for rot in (0, 90, 180, 270):
            rr = [r for r in rows if r[1].rotation == rot]
            cells = [_fmt(*_recall(rr, lambda t, i=i: _bucket(t.size) == i)) for i in range(len(BUCKETS))]
            k, n = _recall(rr, lambda t: True)
            rot_cell = f"{100 * sum(r[3] for r in rr) / k:.1f} %" if k and rotation_right else "-"
            L.append(f"| {label} | {rot} | " + " | ".join(cells) + f" | {_fmt(k, n)} | {rot_cell} |")

    for c in cols:
        rotation_rows(c, scored[c][0], c != "deface")
        if c in CONFIGS and CONFIGS[c].unsure_threshold is not None and CONFIGS[c].threshold < 0.5:
            rotation_rows(f"{c} + unsure", unsure[c][0], False)
    L += ["", "### Per image group: faces left (not found) / extra detections / seconds / work per image", "",
          "Work: network input pixels per image in 640x640 runs (\"before\" counted double: the file as shipped "
          "runs about twice as slow per pixel); unlike the seconds it does not depend on the other jobs on the "
          "machine. deface's work is its one native-resolution run (as shipped).", "",
          "| group | images | faces | " + " | ".join(f"{c}" for c in cols) + " |",
          "|---|---|---|" + "---|" * len(cols)]
    groups = list(dict.fromkeys(s.group for s in samples))
    for g in groups:
        ss = [s for s in samples if s.group == g]
        nf = sum(len(s.truths) for s in ss)
        cells = []
        for c in cols:
            rows, extra = score(ss, results[c])
            left = sum(not r[2] for r in rows)
            ex = sum(extra[s.name] for s in ss)
            secs = np.mean([results[c][s.name].seconds for s in ss])
            work = np.mean([results[c][s.name].work for s in ss])
            cells.append(f"{left} / {ex} / {secs:.2f} / {work:.1f}")
        L.append(f"| {g} | {len(ss)} | {nf} | " + " | ".join(cells) + " |")
    L += ["", "\"extra\" counts detections matching no pasted face: on the face-free groups they are false "
          "hides; on the others some are faces of the source photos' backgrounds or parts of the patches.", ""]
    neg_line = []
    for c in cols:
        fh = sum(len(results[c][s.name].boxes) for s in negs) / max(1, len(negs))
        un = sum(len(results[c][s.name].unsure) for s in negs) / max(1, len(negs))
        neg_line.append(f"{c} {fh:.2f}" + (f" (+{un:.2f} unsure)" if c in names and un else ""))
    L += ["False hides per face-free image: " + ", ".join(neg_line) + ".", ""]
    L += ["### Network runs per image size (`plan_views`)", "",
          "| image | upright: whole + tiles (tile input) | work, upright | default: runs | work, default |",
          "|---|---|---|---|---|"]

    def work(vs):
        px = 0.0
        for v in vs:
            x0, y0, x1, y1 = v.region
            px += np.ceil((x1 - x0) * v.scale / 32) * 32 * np.ceil((y1 - y0) * v.scale / 32) * 32
        return px / 640 / 640

    for h, w in ((480, 640), (640, 640), (768, 1024), (1080, 1920), (2000, 3000), (3000, 4000), (4000, 6000),
                 (150, 2000)):
        up = plan_views(h, w, CONFIGS["upright"])
        tiles = [v for v in up if v.kind == "tile"]
        ts = "1"
        if tiles:
            x0, y0, x1, y1 = tiles[0].region
            ts = f"1 + {len(tiles)} ({round((x1 - x0) * tiles[0].scale)}x{round((y1 - y0) * tiles[0].scale)})"
        dv = plan_views(h, w)
        L.append(f"| {w}x{h} | {ts} | {work(up):.1f} | {len(dv)} | {work(dv):.1f} |")
    L += ["", "Work in 640x640 runs. Plus the re-check: 4 runs of 128x128 (0.16 of a 640x640 run in pixels, "
          "about 0.1 in time) per candidate scoring >= 0.05, at most 128, and one crop of at most "
          "384x384 per turned face larger than ~57 px.", ""]
    L += [f"One-face photos at 640 px ({t640['n']}: the astronaut and CelebA photos upscaled), median per photo: "
          f"before {t640['before']:.0f} ms, default {t640['default']:.0f} ms (median ratio to before "
          f"{t640['ratio']:.2f}), upright only {t640['upright']:.0f} ms, default with the float graph (`fp32`) "
          f"{t640['fp32']:.0f} ms; interleaved, 3 rounds. Before the 8-bit graph, most of the "
          "saving that paid for the turned copies was the ONNX file's weights being folded (the file lists them "
          "as graph inputs, which stops onnxruntime's constant folding; same outputs).", ""]
    L += ["### Targets", ""]
    for c, label in (("default", "the detector's default settings (threshold 0.5), detections only"),
                     ("thr0.4", "the anonymizer's setting (threshold 0.4), detections plus the unsure regions "
                                f"({_unsure_band(CONFIGS['thr0.4'])}) it also hides")):
        if c in results:
            L += _targets(c, label, samples, results, scored["deface"][0] if "deface" in results else None,
                          unsure[c][0] if c == "thr0.4" else scored[c][0], with_unsure=c == "thr0.4")
    return "\n".join(L)


def _unsure_band(cfg: DetectConfig) -> str:
    """Where a setting's unsure regions start, e.g. ">= 0.25; cut by the border >= 0.2"."""
    band = f">= {cfg.unsure_threshold}"
    edge = cfg.border_unsure_threshold
    return band if edge is None else f"{band}; cut by the border >= {edge}"


def _targets(c: str, label: str, samples, results, drows, rows_all, with_unsure: bool) -> list[str]:
    """The issue's target lines for setting ``c`` (rows scored with or without its unsure regions)."""
    L = [f"On clean faces (not covered, not cut), {label}:"]
    rows = [r for r in rows_all if not r[1].occluded and not r[1].cut]
    for rot in (0, 90, 180, 270):
        k24, n24 = _recall(rows, lambda t, rot=rot: t.rotation == rot and t.size >= 24)
        k16, n16 = _recall(rows, lambda t, rot=rot: t.rotation == rot and 16 <= t.size < 24)
        ok24 = n24 and k24 / n24 >= 0.99
        ok16 = n16 and k16 / n16 >= 0.95
        L.append(f"- rotation {rot}: >= 24 px {_fmt(k24, n24)} ({'met' if ok24 else 'NOT met'} >= 99 %), "
                 f"16-24 px {_fmt(k16, n16)} ({'met' if ok16 else 'NOT met'} >= 95 %)")
    if drows is not None:
        worse = []
        for rot in (0, 90, 180, 270):
            for i, bn in enumerate(BUCKET_NAMES):
                def sel(t, i=i, rot=rot):
                    return t.rotation == rot and _bucket(t.size) == i

                (ko, no), (kd, _) = _recall(rows_all, sel), _recall(drows, sel)
                if no and ko < kd:
                    worse.append(f"{bn} px at {rot} ({ko} vs {kd} of {no})")
        L.append("- never below deface on a size bucket at any rotation (all faces): "
                 + ("met" if not worse else "NOT met: " + ", ".join(worse)))
    crowd = [s for s in samples if s.name.startswith("crowd")]
    cr, _ = score(crowd, results[c], with_unsure=with_unsure)
    L.append(f"- 70-face crowds: {sum(not r[2] for r in cr)} faces left over {len(crowd)} images")
    return L + [""]


if __name__ == "__main__":
    main()
