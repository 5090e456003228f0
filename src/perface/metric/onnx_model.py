"""The PerFace metric for inference in ONNX Runtime: every view and mirror image of every face in one run.

Why: the anonymizer embeds each face on two views and their mirror images; in eager PyTorch those were four
batch-1 backbone runs, the slowest part of a swap. Here one dlib-ResNet run (:func:`perface.backbones.onnx_graphs.
run_dlib_features`) gives the pooled levels of all chips of all faces *and* dlib's raw identity descriptor of
the unmirrored 0.25-padding chip, which is exactly the identity embedder's chip, so the identity comes for free.
The projection head is a second, tiny exported graph. Outputs equal :class:`perface.metric.model.PerFaceModel`'s
within float rounding (cosine >= 0.9999, ``tests/metric/test_onnx_model.py``). Only models whose backbone is
dlib's frozen, shipped ResNet run here; :func:`load_inference` gives any other model the PyTorch path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from perface.backbones.onnx_graphs import (
    DLIB_LEVELS,
    DLIB_MEAN_RGB,
    TFJS_BACKBONES,
    run_dlib_features,
    tfjs_backbone_input,
    tfjs_model_dir,
)
from perface.backbones.runtime import OnnxGraph, OnnxNet, files_key, onnx_net, use_onnx
from perface.face.io import InputError, PerFaceError
from perface.metric.config import CONFIG_NAME, WEIGHTS_NAME, ModelConfig, model_fingerprint, read_model_folder

_HEAD_VERSION = 1  # part of the head graph's cache key: bump it when the exported head changes
_SECOND_VERSION = 2  # the same for the second backbone's pooled-levels graph (2: clamps fused)
FaceLike = Any  # np.ndarray image, str/Path, (image, Face), perface.face.pipeline.AnalyzedFace


def _head_graph(folder: Path, config: ModelConfig) -> OnnxGraph:
    """The model's projection head (standardise, MLP, attribute part, mirror averaging) as a graph."""

    def build() -> tuple[Any, tuple[Any, ...]]:
        import torch

        from perface.metric.model import load

        head = load(folder).head
        torch.manual_seed(0)
        dim = int(head.feat_mean.shape[0])
        example = (head.feat_mean + head.feat_std * torch.randn(3, dim),
                   head.feat_mean + head.feat_std * torch.randn(3, dim))
        return _Head(head, config.flip_average), example

    return OnnxGraph("perface-head", files_key([folder / WEIGHTS_NAME, folder / CONFIG_NAME], _HEAD_VERSION),
                     build, ("features", "mirrored"), ("embedding",), atol=1e-5)


def _second_graph(config: ModelConfig) -> OnnxGraph:
    """A second backbone's pooled levels (``BackboneFeatures`` of :mod:`perface.metric.model`, so equal by
    construction) for its normalised NCHW chips; keyed by the shipped network's files and the levels."""
    name, levels = str(config.second_backbone), tuple(config.second_levels)

    def build() -> tuple[Any, tuple[Any, ...]]:
        import torch

        from perface.backbones import load_backbone
        from perface.metric.model import BackboneFeatures

        features = BackboneFeatures(load_backbone(name), levels).eval()
        side = int(features.backbone.input_size)
        torch.manual_seed(0)
        return _Pooled(features), (20.0 * torch.randn(3, 3, side, side),)

    folder = tfjs_model_dir(TFJS_BACKBONES[name][0])
    files = [folder / f for f in ("model.json", "weights.safetensors", "config.json")]
    return OnnxGraph(f"perface-second-{name}", files_key(files, ("pooled", levels), _SECOND_VERSION), build,
                     ("input",), tuple(f"pooled_{lv}" for lv in levels))


def _Pooled(features: Any) -> Any:  # noqa: N802 - a module factory, named like the class it makes
    """``features.run`` as a module returning each level's pooled output (the identity level unit length)."""
    from torch import nn

    class Pooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = features

        def forward(self, x: Any) -> tuple[Any, ...]:
            return tuple(self.features.run(x, 0, self.features.last + 1)[0])

    return Pooled()


def _Head(head: Any, flip_average: bool) -> Any:  # noqa: N802 - a module factory, named like the class it makes
    """``head.embed(features, mirrored)`` as a module with two inputs (mirrored ignored without flip averaging)."""
    from torch import nn

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = head

        def forward(self, features: Any, mirrored: Any) -> Any:
            return self.head.embed(features, mirrored if flip_average else None)

    return Head()


def color_layout(x: np.ndarray, grid: int) -> np.ndarray:
    """Mean of normalised N,3,S,S input over a grid x grid layout (as ``adaptive_avg_pool2d``), flattened."""
    side = x.shape[-1]
    if side % grid == 0:  # equal cells (150 px, grid 6): one reshape
        k = side // grid
        return x.reshape(len(x), x.shape[1], grid, k, grid, k).mean(axis=(3, 5)).reshape(len(x), -1)
    cells = []
    for i in range(grid):
        r0, r1 = (i * side) // grid, -(-((i + 1) * side) // grid)
        row = []
        for j in range(grid):
            c0, c1 = (j * side) // grid, -(-((j + 1) * side) // grid)
            row.append(x[:, :, r0:r1, c0:c1].mean(axis=(2, 3)))
        cells.append(np.stack(row, axis=-1))
    return np.stack(cells, axis=-2).reshape(len(x), -1)  # (N, 3, grid, grid) flattened channel-major


def faces_to_views(model: Any, items: Sequence[FaceLike]) -> list[list[np.ndarray]]:
    """Per view, the chips of every face (``model.align``), from images (largest face), paths or (image, Face).
    Faces it finds itself come from CenterFace's float graph, as the training features did (``features.py``)."""
    from perface.face.detect import REFERENCE_DETECT, Face, detect
    from perface.face.io import read_image

    out: list[list[np.ndarray]] = []
    for item in items:
        if hasattr(item, "views") and item.views is not None:  # pre-aligned views
            chips = list(item.views)
        else:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Face):
                image, face = item
            else:
                path = None
                if isinstance(item, str | os.PathLike):
                    path = str(item)
                    image = read_image(item)
                elif isinstance(item, np.ndarray) and item.ndim == 3:
                    image = item if item.dtype == np.uint8 else np.clip(item, 0, 255).astype(np.uint8)
                else:
                    raise PerFaceError(f"cannot embed an object of type {type(item).__name__}")
                faces = detect(image, REFERENCE_DETECT)
                if not faces:
                    raise InputError(path, "no face found")
                face = max(faces, key=lambda f: f.width * f.height)
            chips = model.align(image, face)
        out = out or [[] for _ in chips]
        for i, c in enumerate(chips):
            out[i].append(c)
    return out


def box_chips(config: ModelConfig, image: np.ndarray, face: Any, side: int) -> list[np.ndarray]:
    """The second backbone's unaligned crops (``second_crop`` "box"): the face box grown by each margin, ``side`` px."""
    from perface.face.recognizers import box_crop

    return [box_crop(image, face, side, m) for m in config.second_paddings]


class OnnxPerFaceModel:
    """A saved PerFace model run in ONNX Runtime: ``embed``, ``similarity`` and ``distance`` as the PyTorch model,
    plus :meth:`embed_with_identity`, which also returns dlib's identity descriptors from the same run."""

    def __init__(self, folder: Path, config: ModelConfig, metadata: dict[str, Any], head: OnnxNet,
                 second: OnnxNet | None = None) -> None:
        self.folder = folder
        self.config = config
        self.metadata = metadata
        self.model_id = model_fingerprint(folder)
        self._head = head
        self._second = second

    def align(self, image: np.ndarray, face: Any) -> list[np.ndarray]:
        """The model's input chips (one per view padding) for a detected face: the chips of
        :func:`perface.face.align.dlib_chip`, cut from one 5-point shape (the predictor runs once, not per view)."""
        import dlib

        from perface.face.detect import dlib_shape

        shape = dlib_shape(image, face.box, 5)
        second = self.config.second_backbone
        box = second is not None and self.config.second_crop == "box"
        cuts = [(150, p) for p in self.config.views]
        cuts += [(TFJS_BACKBONES[second][2], p) for p in self.config.second_paddings] if second and not box else []
        chips = [np.asarray(dlib.extract_image_chip(image, dlib.get_face_chip_details(shape, side, p)),
                            dtype=np.uint8) for side, p in cuts]
        return chips + (box_chips(self.config, image, face, TFJS_BACKBONES[second][2]) if box else [])

    def _features(self, chips: np.ndarray, descriptor: np.ndarray, pooled: dict[str, np.ndarray]) -> np.ndarray:
        """The backbone features of one view batch, in the order of ``BackboneFeatures.run``."""
        parts = []
        if self.config.color_grid:
            x = (chips.astype(np.float32) - DLIB_MEAN_RGB) / 256.0
            parts.append(color_layout(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), self.config.color_grid))
        for level in DLIB_LEVELS:
            if level in self.config.feature_levels:
                parts.append(pooled[level])
        if "head" in self.config.feature_levels:
            parts.append(descriptor / np.maximum(np.linalg.norm(descriptor, axis=1, keepdims=True), 1e-12))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def embed_with_identity(self, views: Sequence[Sequence[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (N, D) and dlib's raw identity descriptors (N, 128) of the first view's unmirrored chips,
        for ``views[v][i]`` = chip of face i for view v; one backbone run for all chips and mirror images."""
        n = len(views[0]) if len(views) else 0
        if n == 0:
            return np.zeros((0, self.config.embedding_dim), np.float32), np.zeros((0, 128), np.float32)
        n_views = len(self.config.views)
        stacks = [np.stack(v) for v in views]
        flips = self.config.flip_average
        per = 2 if flips else 1

        def batch_of(sts: list[np.ndarray], mirror: bool = True) -> np.ndarray:  # view by view, then mirror images
            return np.concatenate([s for st in sts for s in ((st, st[:, :, ::-1]) if flips and mirror else (st,))])

        out = run_dlib_features(batch_of(stacks[:n_views]))
        if out is None:
            raise RuntimeError("the dlib ResNet graph is not available")
        feats: list[list[np.ndarray]] = [[], []]
        for v, st in enumerate(stacks[:n_views]):
            for k in range(per):
                rows = slice((v * per + k) * n, (v * per + k + 1) * n)
                chips = st if k == 0 else st[:, :, ::-1]
                pooled = {lv: out[f"pooled_{lv}"][rows] for lv in DLIB_LEVELS}
                feats[k].append(self._features(chips, out["descriptor"][rows], pooled))
        if self._second is not None:  # the second backbone's levels follow the first's, view by view
            spec = TFJS_BACKBONES[str(self.config.second_backbone)]
            per2 = per if self.config.second_flip else 1  # without its mirror images, they reuse the plain rows
            x = tfjs_backbone_input(batch_of(stacks[n_views:], per2 == 2), spec[3])
            second = np.concatenate([np.concatenate(self._second(x[s : s + 64]), axis=1)
                                     for s in range(0, len(x), 64)])
            for v in range(len(stacks) - n_views):
                for k in range(per):
                    j = v * per2 + min(k, per2 - 1)
                    feats[k].append(second[j * n : (j + 1) * n])
        plain = np.concatenate(feats[0], axis=1)
        mirrored = np.concatenate(feats[1], axis=1) if flips else plain
        emb = self._head(plain, mirrored)[0]
        return emb.astype(np.float32), out["descriptor"][:n].astype(np.float32)

    def embed_views(self, views: Sequence[Sequence[np.ndarray]], batch_size: int = 64) -> np.ndarray:
        """Embeddings for pre-aligned chips, ``views[v][i]`` = chip of face i for view v."""
        n = len(views[0]) if len(views) else 0
        parts = [self.embed_with_identity([v[s : s + batch_size] for v in views])[0] for s in range(0, n, batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.config.embedding_dim), np.float32)

    def embed(self, faces: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        """(N, embedding_dim) unit embeddings of faces given as images (largest face), paths or (image, Face)."""
        if isinstance(faces, np.ndarray) and faces.ndim == 3:
            faces = [faces]
        return self.embed_views(faces_to_views(self, list(faces)), batch_size)

    def similarity(self, a: Any, b: Any) -> float:
        """Perceptual similarity (cosine, higher = more alike) of two faces."""
        e = self.embed([a, b])
        return float(e[0] @ e[1])

    def distance(self, a: Any, b: Any) -> float:
        """Perceptual distance ``1 - cosine`` (0 identical, up to 2)."""
        return 1.0 - self.similarity(a, b)


def runs_in_onnx(config: ModelConfig) -> bool:
    """Whether a model fits the ONNX path: dlib's shipped ResNet, frozen (the graph holds the shipped weights), and
    no second backbone or a shipped TF.js one."""
    return (config.backbone == "dlib-resnet" and config.train_from is None
            and (config.second_backbone is None or config.second_backbone in TFJS_BACKBONES))


def load_inference(name_or_path: str | os.PathLike[str] = "default") -> Any:
    """A model for inference: :class:`OnnxPerFaceModel` when it fits ONNX Runtime and that is on (no PyTorch
    import once the graphs are cached), else :func:`perface.metric.model.load`'s PyTorch model."""
    folder, raw = read_model_folder(name_or_path)
    config = ModelConfig.from_dict(raw["model"])
    if use_onnx() and runs_in_onnx(config):
        head = onnx_net(_head_graph(folder, config))
        second = onnx_net(_second_graph(config)) if config.second_backbone is not None else None
        if (head is not None and (second is not None or config.second_backbone is None)
                and run_dlib_features(np.zeros((1, 150, 150, 3), np.uint8)) is not None):
            return OnnxPerFaceModel(folder, config, raw.get("metadata", {}), head, second)
    from perface.backbones.runtime import set_torch_threads
    from perface.metric.model import load

    set_torch_threads()
    return load(folder)
