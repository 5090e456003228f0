"""A saved PerFace model's architecture and folder: :class:`ModelConfig`, its files, its fingerprint.

Kept apart from :mod:`perface.metric.model` so that reading a model folder needs no PyTorch (the ONNX
Runtime path of :mod:`perface.metric.onnx_model` loads without it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from perface.face.io import InputError, PerFaceError

DEFAULT_MODEL_DIR = "perface-default"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a PerFace model (saved next to its weights)."""

    backbone: str = "dlib-resnet"
    views: tuple[float, ...] = (0.25, 0.6)  # dlib chip paddings: 0.25 is dlib's own, 0.6 adds hair and contour
    feature_levels: tuple[str, ...] = ("level3", "level4", "level5", "head")
    train_from: str | None = None  # first backbone stage to fine-tune; None keeps the backbone frozen
    hidden: int = 512
    embed_dim: int = 64
    dropout: float = 0.2
    aux_outputs: int = 0  # size of the optional auxiliary attribute-regression head (0 = none)
    flip_average: bool = True  # embed a face and its mirror image and average (test-time augmentation)
    color_grid: int = 6  # colour layout of each view (grid x grid mean RGB), 0 = off: hair and skin colour
    attribute_outputs: int = 0  # linear attribute head (predicted rating-space coordinates), 0 = none
    attribute_weight: float = 0.15  # its share of the embedding (see ProjectionHead.embed)
    # A second frozen backbone whose pooled levels (``second_levels``, no colour layout) are appended after all of
    # the first's, from chips cut at the same view paddings at its own input size (issue 18: dlib's ResNet with HSE
    # FaceRes, trained on real photos). None: one backbone. It needs a frozen first backbone (``train_from`` None).
    second_backbone: str | None = None
    second_levels: tuple[str, ...] = ()
    second_views: tuple[float, ...] = ()  # its view paddings (a subset of ``views``; box margins for "box"); (): all
    second_flip: bool = True  # False: its mirror-image features are the face's own (one run per view, not two)
    # "chip": the second backbone sees dlib's aligned chips at ``second_views`` paddings; "box": the detector's box
    # grown by each ``second_views`` entry on every side, unaligned (0.1 is FaceRes's own recognizer crop)
    second_crop: str = "chip"
    identity_dim: int = 0  # > 0: identity-residual head; the embedding carries view 0's identity descriptor
    # (the backbone's "head" level, this long: 128 for dlib) next to a weighted MLP part that starts near 0: an
    # untrained model is (nearly) the identity metric, and training moves away only as far as the data support
    # > 0: the second backbone's identity output (its "head" level, ``second_identity_dim`` long, first view),
    # centred on the training faces' mean and made unit length, joined to the embedding with this weight w, in
    # training too: cos = (cos_rest + w^2 cos_identity) / (1 + w^2). Issue 18: real photos grouped as that network
    # groups them.
    second_identity_weight: float = 0.0
    second_identity_dim: int = 0  # 1024 for FaceRes's global pooling

    @property
    def second_paddings(self) -> tuple[float, ...]:
        """The view paddings the second backbone sees (none without one)."""
        if self.second_backbone is None:
            return ()
        return self.second_views or self.views

    @property
    def embedding_dim(self) -> int:
        """Length of the final embedding: the MLP's, plus the attribute coordinates and one padding entry, plus the
        joined identity of the second backbone."""
        return (self.embed_dim + self.identity_dim + (self.attribute_outputs + 1 if self.attribute_outputs else 0)
                + (self.second_identity_dim if self.second_identity_weight else 0))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise PerFaceError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        d = dict(d)
        for k in ("views", "feature_levels", "second_levels", "second_views"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)




def model_fingerprint(directory: Path) -> str:
    """A short hash of a saved model's weights; galleries record it to detect a model change."""
    h = hashlib.sha256((directory / WEIGHTS_NAME).read_bytes()).hexdigest()[:16]
    return f"perface:{h}"


def default_model_dir() -> Path:
    return Path(str(resources.files("perface").joinpath("models", DEFAULT_MODEL_DIR)))


def read_model_folder(name_or_path: str | os.PathLike[str] = "default") -> tuple[Path, dict[str, Any]]:
    """A model's folder (``"default"``: the shipped one) and its parsed ``config.json``, checked."""
    if str(name_or_path) == "default":
        d = default_model_dir()
    else:
        d = Path(name_or_path)
        if d.is_file():
            d = d.parent
    if not (d / CONFIG_NAME).is_file() or not (d / WEIGHTS_NAME).is_file():
        raise InputError(d, f"not a PerFace model folder (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        cfg = json.loads((d / CONFIG_NAME).read_text())
    except json.JSONDecodeError as exc:
        raise InputError(d / CONFIG_NAME, f"invalid JSON ({exc})") from None
    if cfg.get("format") != "perface-model/1":
        raise InputError(d / CONFIG_NAME, f"unknown model format {cfg.get('format')!r}")
    return d, cfg
