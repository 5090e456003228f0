"""Face-embedding backbones in PyTorch: dlib's face-recognition ResNet (pretrained, from the shipped .dat)
and ArcFace ``iresnet`` (user-supplied weights), with batched embedding, ONNX export and cached ONNX Runtime
sessions (:mod:`perface.backbones.runtime`).

Typical use::

    from perface.backbones import load_backbone, embed_chips
    model = load_backbone("dlib-resnet")          # dlib's weights, read from face_recognition_models
    desc = embed_chips(model, chips)              # chips: 150x150 RGB uint8 from dlib.get_face_chip

Names are imported lazily, so ``perface.backbones.runtime`` (ONNX Runtime only) loads without PyTorch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    "BACKBONES",
    "LEVELS",
    "STAGES",
    "DlibResNet",
    "IResNet",
    "embed_chips",
    "l2_normalize",
    "load_backbone",
    "preprocess_chips",
]

_WHERE = {"BACKBONES": "loading", "embed_chips": "loading", "load_backbone": "loading",
          "LEVELS": "dlib_resnet", "STAGES": "dlib_resnet", "DlibResNet": "dlib_resnet",
          "l2_normalize": "dlib_resnet", "preprocess_chips": "dlib_resnet", "IResNet": "iresnet"}

if TYPE_CHECKING:  # pragma: no cover
    from .dlib_resnet import LEVELS, STAGES, DlibResNet, l2_normalize, preprocess_chips
    from .iresnet import IResNet
    from .loading import BACKBONES, embed_chips, load_backbone


def __getattr__(name: str) -> Any:
    """Import on first use: PyTorch loads only when a torch backbone is asked for."""
    if name in _WHERE:
        return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
