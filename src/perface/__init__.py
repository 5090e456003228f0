"""PerFace: perceptual face similarity and similarity-controlled face anonymization, offline.

Small public API in the style of DreamSim::

    import perface
    model = perface.load()                  # the shipped default model
    e = model.embed(["a.jpg", "b.jpg"])     # (2, d) unit vectors
    model.similarity("a.jpg", "b.jpg")      # cosine; distance = 1 - cosine
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["InputError", "PerFaceError", "__version__", "detect", "load", "load_backbone", "read_image"]

if TYPE_CHECKING:  # pragma: no cover
    from perface.backbones import load_backbone
    from perface.face.detect import detect
    from perface.face.io import InputError, PerFaceError, read_image
    from perface.metric.model import load


def __getattr__(name: str) -> Any:
    """Import lazily so ``import perface`` stays fast and torch loads only when a model is used."""
    if name == "load":
        from perface.metric.model import load

        return load
    if name == "load_backbone":
        from perface.backbones import load_backbone

        return load_backbone
    if name == "detect":
        from perface.face.detect import detect

        return detect
    if name in ("read_image", "InputError", "PerFaceError"):
        from perface.face import io

        return getattr(io, name)
    raise AttributeError(f"module 'perface' has no attribute {name!r}")
