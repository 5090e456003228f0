"""PerFace: a perceptual face-similarity model (backbone features + projection head -> unit embedding).

The backbone is the torch port of dlib's face ResNet (frozen, or fine-tuned from a chosen level);
pooled activations of several levels, from one or more aligned views of the face (a tight chip and a
wider one that shows hair and face shape), go through a small projection head to an L2-normalised
embedding. Similarity is cosine, distance ``1 - cosine``, as in the paper.

Public API in the style of DreamSim: ``perface.load("default" | path)`` returns a :class:`PerFaceModel`
with ``embed(faces)``, ``similarity(a, b)`` and ``distance(a, b)``. Weights are safetensors + JSON config.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from perface.face.io import InputError, PerFaceError
from perface.metric.config import (  # noqa: F401 - re-exported: the config is part of the model's API
    CONFIG_NAME,
    DEFAULT_MODEL_DIR,
    WEIGHTS_NAME,
    ModelConfig,
    default_model_dir,
    model_fingerprint,
    read_model_folder,
)
from perface.metric.onnx_model import FaceLike, box_chips, faces_to_views


def _pool(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(2, 3)) if x.ndim == 4 else x


class BackboneFeatures(nn.Module):
    """Pooled activations of the chosen backbone levels, for one view batch, concatenated."""

    def __init__(self, backbone: nn.Module, levels: Sequence[str], color_grid: int = 0) -> None:
        super().__init__()
        self.backbone = backbone
        self.levels = tuple(levels)
        self.color_grid = color_grid
        names = [n for n, _ in backbone.stages()]
        for lv in self.levels:
            if lv not in names:
                raise PerFaceError(f"feature level {lv!r} is not a backbone stage ({', '.join(names)})")
        self.last = max(names.index(lv) for lv in self.levels)

    def dims(self) -> int:
        with torch.no_grad():
            side = int(getattr(self.backbone, "input_size", 150))
            x = torch.zeros(1, 3, side, side)
            return int(self.forward(x).shape[1])

    def forward(self, x: torch.Tensor, start: int = 0, cached: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Run stages ``start..last``; ``cached`` holds the colour layout and pooled outputs before ``start``."""
        pooled, _ = self.run(x, start, self.last + 1, cached)
        return torch.cat(pooled, dim=1)

    def run(self, x: torch.Tensor, start: int, stop: int, cached: list[torch.Tensor] | None = None
            ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Stages ``start..stop-1``: the pooled features collected so far and the activation entering ``stop``.

        Training caches ``run(x, 0, k)`` for the frozen stages below ``k`` and later continues with
        ``forward(activation, start=k, cached=pooled)``; both paths share this one loop.
        """
        pooled = list(cached or [])
        if start == 0 and self.color_grid:
            pooled.append(self.color(x))
        for i, (name, mod) in enumerate(self.backbone.stages()):
            if i < start:
                continue
            if i >= stop:
                break
            x = mod(x)
            if name in self.levels:
                y = _pool(x)
                if name == "head":
                    y = y / y.norm(dim=1, keepdim=True).clamp_min(1e-12)
                pooled.append(y)
        return pooled, x

    def color(self, x: torch.Tensor) -> torch.Tensor:
        """Mean (normalised) RGB over a grid x grid layout of the input: where hair, skin and background are."""
        return nn.functional.adaptive_avg_pool2d(x, self.color_grid).flatten(1)


class ProjectionHead(nn.Module):
    """Standardise features, then MLP -> L2-normalised embedding (plus optional auxiliary and attribute heads).

    The optional *attribute head* is a linear map of the standardised features to predicted
    rating-space coordinates (fitted in closed form by :meth:`fit_attributes`). :meth:`embed` joins it
    to the MLP embedding so that ``1 - cosine`` of the result is, up to a small padding term,
    ``(1 - cos_mlp) + w**2 / 2 * ||p - p'||**2``: one cosine that mixes both, so galleries and indexes
    need no second distance.
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float, aux_outputs: int = 0,
                 attribute_outputs: int = 0, attribute_weight: float = 0.15,
                 identity_slice: tuple[int, int] | None = None,
                 joined: tuple[int, int, float] | None = None) -> None:
        super().__init__()
        self.identity_slice = identity_slice
        # (start, end, weight): the features' columns joined to the embedding (``second_identity_weight``), and the
        # unit mean of the training faces' rows that they are centred on
        self.joined = joined
        if joined is not None:
            self.register_buffer("joined_centre", torch.zeros(joined[1] - joined[0]))
        self.register_buffer("feat_mean", torch.zeros(in_dim))
        self.register_buffer("feat_std", torch.ones(in_dim))
        self.mlp = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
        )
        # Identity-residual mix: embedding (identity, r * mlp) / sqrt(1 + r**2). r starts small, so the untrained
        # model is (nearly) the identity metric; weight decay pulls r back to 0, i.e. toward the identity.
        # (A zero-initialised MLP instead would sit at a saddle: cosines depend on it only quadratically.)
        self.identity_mix = nn.Parameter(torch.tensor(0.1)) if identity_slice is not None else None
        self.aux = nn.Linear(out_dim, aux_outputs) if aux_outputs else None
        self.attribute_weight = attribute_weight
        if attribute_outputs:
            self.attribute = nn.Linear(in_dim, attribute_outputs, bias=False)
            nn.init.zeros_(self.attribute.weight)
            self.attribute.weight.requires_grad_(False)
            self.register_buffer("attribute_radius2", torch.tensor(1.0))
        else:
            self.attribute = None

    def set_standardisation(self, feats: torch.Tensor) -> None:
        """Fix the feature mean/std from training features (kept in the weights file)."""
        self.feat_mean.copy_(feats.mean(0))
        self.feat_std.copy_(feats.std(0).clamp_min(1e-6))

    def forward(self, feats: torch.Tensor, with_aux: bool = False):
        """The MLP's unit embedding (what the triplet loss trains), and the auxiliary output when asked."""
        z = self.mlp((feats - self.feat_mean) / self.feat_std)
        emb = self._join(feats, self._with_identity(feats, z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)))
        if with_aux:
            return emb, (self.aux(z) if self.aux is not None else None)
        return emb

    def _with_identity(self, feats: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Identity-residual heads: the unit identity descriptor of ``feats`` next to ``identity_mix * emb``."""
        if self.identity_slice is None:
            return emb
        ident = feats[:, self.identity_slice[0] : self.identity_slice[1]]
        out = torch.cat([ident / ident.norm(dim=1, keepdim=True).clamp_min(1e-12), self.identity_mix * emb], 1)
        return out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def _joined_rows(self, feats: torch.Tensor) -> torch.Tensor:
        """The joined columns of ``feats``, each row made unit length."""
        start, end, _ = self.joined  # type: ignore[misc]
        x = feats[:, start:end]
        return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def _joined_unit(self, feats: torch.Tensor) -> torch.Tensor:
        """The joined rows centred on ``joined_centre`` and made unit length again."""
        x = self._joined_rows(feats) - self.joined_centre
        return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def _join(self, feats: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``[emb, w u] / sqrt(1 + w^2)`` for a unit ``emb`` and the joined identity ``u``; ``emb`` without a join."""
        if self.joined is None:
            return emb
        w = self.joined[2]
        return torch.cat([emb, w * self._joined_unit(feats)], 1) / math.sqrt(1.0 + w * w)

    @torch.no_grad()
    def set_joined_centre(self, feats: torch.Tensor) -> None:
        """Centre the joined identity on the mean of the training faces' unit rows (kept in the weights file)."""
        if self.joined is not None:
            self.joined_centre.copy_(self._joined_rows(feats).mean(0))

    def _mlp_unit(self, feats: torch.Tensor) -> torch.Tensor:
        z = self.mlp((feats - self.feat_mean) / self.feat_std)
        return z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def attributes(self, feats: torch.Tensor) -> torch.Tensor:
        """Predicted rating-space coordinates (zeros until fitted)."""
        if self.attribute is None:
            raise PerFaceError("this model has no attribute head")
        return self.attribute((feats - self.feat_mean) / self.feat_std)

    def embed(self, feats: torch.Tensor, mirrored: torch.Tensor | None = None) -> torch.Tensor:
        """The final unit embedding; with ``mirrored`` features, face and mirror image are averaged."""
        if self.identity_slice is not None or self.joined is not None:
            # the MLP part is mirror-averaged; the identity, residual or joined, is the face's own
            emb = self._mlp_unit(feats)
            if mirrored is not None:
                emb = emb + self._mlp_unit(mirrored)
                emb = emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-12)
            emb = self._with_identity(feats, emb)
        else:
            emb = self(feats)
            if mirrored is not None:
                emb = emb + self(mirrored)
                emb = emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-12)
        if self.attribute is None:
            return self._join(feats, emb)
        p = self._weighted_attributes(feats, mirrored)
        pad = (self.attribute_radius2 - 1.0 - (p**2).sum(1, keepdim=True)).clamp_min(0.0).sqrt()
        out = torch.cat([emb, p, pad], dim=1)
        return self._join(feats, out / out.norm(dim=1, keepdim=True).clamp_min(1e-12))

    def _weighted_attributes(self, feats: torch.Tensor, mirrored: torch.Tensor | None) -> torch.Tensor:
        """``w p``: the attribute part of the embedding, averaged with the mirror image when given."""
        p = self.attributes(feats)
        if mirrored is not None:
            p = 0.5 * (p + self.attributes(mirrored))
        return self.attribute_weight * p

    @torch.no_grad()
    def fit_attributes(self, feats: torch.Tensor, mirrored: torch.Tensor | None, targets: torch.Tensor,
                       ridge: float, columns: slice | None = None) -> None:
        """Ridge regression (closed form, kernel side: few faces, many features) of targets on features.

        ``columns``: fit only these outputs (e.g. the label columns, on other faces than the rating columns).
        Why not SGD: with a few hundred faces the closed form is exact, instant and has one knob.
        """
        if self.attribute is None:
            raise PerFaceError("this model has no attribute head")
        x = (feats - self.feat_mean) / self.feat_std
        y = targets
        if mirrored is not None:
            x = torch.cat([x, (mirrored - self.feat_mean) / self.feat_std])
            y = torch.cat([targets, targets])
        x, y = x.double(), y.double()
        alpha = torch.linalg.solve(x @ x.T + ridge * torch.eye(len(x), dtype=x.dtype), y)
        weight = (x.T @ alpha).T.float()
        if columns is None:
            self.attribute.weight.copy_(weight)
            self.set_attribute_radius([(feats, mirrored)])
        else:
            self.attribute.weight[columns] = weight

    @torch.no_grad()
    def set_attribute_radius(self, faces: list[tuple[torch.Tensor, torch.Tensor | None]]) -> None:
        """Leave headroom above the training faces' attribute parts so the padding entry stays real for new faces."""
        top = max(float((self._weighted_attributes(f, m) ** 2).sum(1).max()) for f, m in faces)
        self.attribute_radius2.fill_(1.0 + 1.2 * top)


class PerFaceModel(nn.Module):
    """Backbone + projection head. ``embed`` takes images, paths, or (image, Face) pairs."""

    def __init__(self, config: ModelConfig | None = None, backbone: nn.Module | None = None,
                 pretrained_backbone: bool = True) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        if backbone is None:
            from perface.backbones import load_backbone

            backbone = load_backbone(self.config.backbone, pretrained=pretrained_backbone)
        self.features = BackboneFeatures(backbone, self.config.feature_levels, self.config.color_grid)
        self.second = self._second_features()
        per_view = self.features.dims()
        self.first_view_dim = per_view
        self.second_view_dim = self.second.dims() if self.second is not None else 0
        self.feature_dim = per_view * len(self.config.views) + self.second_view_dim * len(self.config.second_paddings)
        self.head = ProjectionHead(self.feature_dim, self.config.hidden, self.config.embed_dim,
                                   self.config.dropout, self.config.aux_outputs, self.config.attribute_outputs,
                                   self.config.attribute_weight, self._identity_slice(per_view),
                                   self._joined_columns(per_view))
        self.set_trainable()
        self.model_id = "untrained"

    def _second_features(self) -> BackboneFeatures | None:
        """The second backbone's pooled levels (no colour layout), or None without one."""
        cfg = self.config
        if cfg.second_backbone is None:
            return None
        if cfg.train_from is not None:
            raise PerFaceError("second_backbone needs a frozen first backbone (train_from: null)")
        if not cfg.second_levels:
            raise PerFaceError("second_backbone needs second_levels (which of its stages to pool)")
        if cfg.second_crop not in ("chip", "box"):
            raise PerFaceError(f"second_crop must be 'chip' or 'box', not {cfg.second_crop!r}")
        if cfg.second_crop == "box" and not cfg.second_views:
            raise PerFaceError("second_crop 'box' needs second_views (the box margins, e.g. [0.1])")
        if cfg.second_crop == "chip" and not set(cfg.second_views) <= set(cfg.views):
            raise PerFaceError(f"second_views {list(cfg.second_views)} must be among views {list(cfg.views)}")
        from perface.backbones import load_backbone

        return BackboneFeatures(load_backbone(cfg.second_backbone), cfg.second_levels)  # frozen by set_trainable

    def _identity_slice(self, per_view: int) -> tuple[int, int] | None:
        """Where view 0's identity descriptor (the "head" level, pooled last) sits in the features."""
        n = self.config.identity_dim
        if not n:
            return None
        if self.config.feature_levels[-1] != "head" or self.features.levels[-1] != "head":
            raise PerFaceError("identity_dim needs 'head' as the last feature level (the identity descriptor)")
        return (per_view - n, per_view)

    def _joined_columns(self, per_view: int) -> tuple[int, int, float] | None:
        """Where the second backbone's identity output (its "head" level, pooled last) of its first view sits in the
        features, and its weight (``second_identity_weight``); None without a join."""
        cfg = self.config
        if not cfg.second_identity_weight:
            return None
        if self.second is None or cfg.second_levels[-1] != "head":
            raise PerFaceError("second_identity_weight needs a second backbone whose last level is 'head'")
        n = cfg.second_identity_dim
        if n != getattr(self.second.backbone, "embedding_dim", None):
            raise PerFaceError(f"second_identity_dim {n} is not the length of {cfg.second_backbone}'s 'head' level")
        end = per_view * len(cfg.views) + self.second_view_dim
        return (end - n, end, float(cfg.second_identity_weight))

    # --------------------------------------------------------------- training support
    def set_trainable(self) -> None:
        """Freeze the backbone up to (not including) ``config.train_from``."""
        bb = self.features.backbone
        names = [n for n, _ in bb.stages()]
        if self.second is not None:
            self.second.backbone.freeze_until("head")
        if self.config.train_from is None:
            bb.freeze_until("head")
        else:
            idx = names.index(self.config.train_from)
            bb.freeze_until(names[idx - 1] if idx > 0 else None)

    def view_features(self, views: Sequence[torch.Tensor]) -> torch.Tensor:
        """Concatenated backbone features of all views (each an N,3,S,S normalised batch; S = 150 for dlib); with a
        second backbone, its batches of the same views follow the first's."""
        n = len(self.config.views)
        feats = [self.features(v) for v in views[:n]]
        if self.second is not None:
            feats += [self.second(v) for v in views[n:]]
        return torch.cat(feats, dim=1)

    def _mirrored_features(self, batch: list[torch.Tensor], plain: torch.Tensor) -> torch.Tensor:
        """Features of the mirror images; without ``second_flip`` the second backbone's part is ``plain``'s."""
        if self.second is None or self.config.second_flip:
            return self.view_features([b.flip(3) for b in batch])
        n = len(self.config.views)
        first = torch.cat([self.features(b.flip(3)) for b in batch[:n]], dim=1)
        return torch.cat([first, plain[:, first.shape[1]:]], dim=1)

    def preprocess_views(self, views: Sequence[Sequence[np.ndarray] | np.ndarray]) -> list[torch.Tensor]:
        """Chip batches (as :meth:`align` orders them) -> each backbone's normalised NCHW input."""
        n = len(self.config.views)
        second = self.second.backbone if self.second is not None else None
        return [(self.features.backbone if i < n else second).preprocess(v) for i, v in enumerate(views)]

    def forward(self, views: Sequence[torch.Tensor]) -> torch.Tensor:
        """Final embeddings of aligned view batches (no mirror averaging)."""
        return self.head.embed(self.view_features(views))

    # --------------------------------------------------------------- inference
    def align(self, image: np.ndarray, face) -> list[np.ndarray]:
        """The model's input chips for a detected face: one per view padding, then as many for a second backbone."""
        from perface.face.align import dlib_chip

        first = int(getattr(self.features.backbone, "input_size", 150))
        chips = [dlib_chip(image, face, first, padding=p).crop for p in self.config.views]
        if self.second is not None:
            side = int(getattr(self.second.backbone, "input_size", 150))
            chips += (box_chips(self.config, image, face, side) if self.config.second_crop == "box" else
                      [dlib_chip(image, face, side, padding=p).crop for p in self.config.second_paddings])
        return chips

    def _to_views(self, items: Sequence[FaceLike]) -> list[list[np.ndarray]]:
        return faces_to_views(self, items)

    @torch.inference_mode()
    def embed_views(self, views: list[list[np.ndarray]], batch_size: int = 64) -> np.ndarray:
        """Embeddings for pre-aligned chips, ``views[v][i]`` = chip of face i for view v."""
        n = len(views[0]) if views else 0
        if n == 0:
            return np.zeros((0, self.config.embedding_dim), dtype=np.float32)
        self.eval()
        out = []
        for s in range(0, n, batch_size):
            batch = self.preprocess_views([v[s : s + batch_size] for v in views])
            plain = self.view_features(batch)
            mirrored = self._mirrored_features(batch, plain) if self.config.flip_average else None
            emb = self.head.embed(plain, mirrored)
            out.append(emb.float().numpy())
        return np.concatenate(out).astype(np.float32)

    def embed(self, faces: Sequence[FaceLike], batch_size: int = 64) -> np.ndarray:
        """(N, embedding_dim) unit embeddings of faces given as images (largest face), paths or (image, Face)."""
        if isinstance(faces, np.ndarray) and faces.ndim == 3:
            faces = [faces]
        return self.embed_views(self._to_views(list(faces)), batch_size)

    def similarity(self, a: FaceLike, b: FaceLike) -> float:
        """Perceptual similarity (cosine, higher = more alike) of two faces."""
        e = self.embed([a, b])
        return float(e[0] @ e[1])

    def distance(self, a: FaceLike, b: FaceLike) -> float:
        """Perceptual distance ``1 - cosine`` (0 identical, up to 2)."""
        return 1.0 - self.similarity(a, b)

    # --------------------------------------------------------------- persistence
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Head weights plus any fine-tuned backbone stages (the pretrained rest is not saved)."""
        keep = {}
        bb = self.features.backbone
        tuned = set(bb.trainable_stages()) if self.config.train_from else set()
        keys_of = getattr(bb, "stage_state_keys", None)  # backbones whose stages do not own their weights
        exact = {f"features.backbone.{k}" for s in tuned for k in keys_of(s)} if keys_of else set()
        for k, v in self.state_dict().items():
            if k.startswith("head.") or k in exact or any(k.startswith(f"features.backbone.{s}.") for s in tuned):
                keep[k] = v.detach().cpu().contiguous()
        return keep

    def save(self, directory: str | os.PathLike[str], metadata: dict[str, Any] | None = None,
             overwrite: bool = False) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into a folder (refuses to overwrite unless asked)."""
        from safetensors.torch import save_file

        d = Path(directory)
        if (d / WEIGHTS_NAME).exists() and not overwrite:
            raise InputError(d, "a model already exists here (pass overwrite=True to replace it)")
        d.mkdir(parents=True, exist_ok=True)
        state = self.trainable_state()
        from perface.face.io import atomic_write

        with atomic_write(d / WEIGHTS_NAME, overwrite=overwrite, what="model") as tmp:
            save_file(state, str(tmp))
        cfg = {"format": "perface-model/1", "model": dataclasses.asdict(self.config), "metadata": metadata or {}}
        with atomic_write(d / CONFIG_NAME, overwrite=True) as tmp:
            tmp.write_text(json.dumps(cfg, indent=2, default=str))
        return d


def load(name_or_path: str | os.PathLike[str] = "default", device: str = "cpu") -> PerFaceModel:
    """Load a PerFace model: ``"default"`` (shipped in the package) or a folder/``.safetensors`` path."""
    from safetensors.torch import load_file

    d, cfg = read_model_folder(name_or_path)
    model = PerFaceModel(ModelConfig.from_dict(cfg["model"]))
    state = load_file(str(d / WEIGHTS_NAME))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing_head = [k for k in missing if k.startswith("head.")]
    if missing_head or unexpected:
        raise InputError(d / WEIGHTS_NAME, f"weights do not fit the config (missing {missing_head[:3]}, "
                                           f"unexpected {unexpected[:3]})")
    model.model_id = model_fingerprint(d)
    model.metadata = cfg.get("metadata", {})  # type: ignore[attr-defined]
    model.eval()
    return model.to(device)


@dataclass
class AlignedViews:
    """Pre-aligned model inputs for one face (what galleries and caches store)."""

    views: list[np.ndarray] = field(repr=False)
