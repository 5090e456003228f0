"""Identity embeddings from dlib's face-recognition ResNet (128-d, L2-normalised).

Three interchangeable engines run the same network on dlib's aligned 150 px chips from
:func:`perface.face.align.dlib_chip`: ``onnx`` (the default: our port of dlib's net exported to ONNX Runtime,
:mod:`perface.backbones.runtime`; it falls back to ``torch`` when ONNX Runtime is off or the export failed its
check), ``torch`` (the port in PyTorch) and ``dlib`` (dlib's own ``compute_face_descriptor``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from perface.face.align import dlib_chip
from perface.face.detect import Face, dlib_model_path

Engine = Literal["onnx", "torch", "dlib"]

#: Cosine similarity of L2-normalised dlib descriptors at or above which two faces are taken as one
#: person. dlib's documented rule is raw L2 distance < 0.6; raw descriptors have norm ~1.49, so that
#: is cosine ~ 1 - (0.6 / 1.49)^2 / 2 = 0.92. Checked on CelebA pairs (docs/benchmarks.md).
SAME_PERSON_COSINE = 0.92


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(n, 1e-12)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Cosine similarity of two vectors, or row-wise for two (N, d) arrays."""
    a = l2_normalize(np.asarray(a))
    b = l2_normalize(np.asarray(b))
    sim = (a * b).sum(axis=-1)
    return float(sim) if np.ndim(sim) == 0 else sim


@dataclass(frozen=True)
class EmbedConfig:
    """Identity-embedding settings."""

    engine: Engine = "onnx"
    batch_size: int = 32


class IdentityEmbedder:
    """dlib's 128-d identity network on aligned 150 px chips; deterministic, batched."""

    dim = 128

    def __init__(self, config: EmbedConfig | None = None) -> None:
        self.config = config or EmbedConfig()
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                if self.config.engine == "dlib":
                    import dlib

                    self._model = dlib.face_recognition_model_v1(
                        dlib_model_path("dlib_face_recognition_resnet_model_v1.dat")
                    )
                else:
                    from perface.backbones import load_backbone
                    from perface.backbones.runtime import set_torch_threads

                    set_torch_threads()
                    self._model = load_backbone("dlib-resnet")
        return self._model

    def embed_chips(self, chips: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N, 128) float32 unit vectors for a list of 150x150 RGB uint8 chips."""
        chips = list(chips)
        if not chips:
            return np.zeros((0, self.dim), dtype=np.float32)
        for c in chips:
            if c.shape != (150, 150, 3) or c.dtype != np.uint8:
                raise ValueError(f"identity chips must be 150x150x3 uint8, got {c.dtype} {c.shape}")
        if self.config.engine == "onnx":
            from perface.backbones.onnx_graphs import run_dlib_features

            feats = run_dlib_features(np.stack(chips))
            if feats is not None:
                return l2_normalize(feats["descriptor"])
        model = self._load()
        if self.config.engine == "dlib":
            out = []
            bs = self.config.batch_size
            for i in range(0, len(chips), bs):
                out.extend(np.asarray(d) for d in model.compute_face_descriptor(chips[i : i + bs]))
            raw = np.stack(out).astype(np.float32)
        else:
            from perface.backbones import embed_chips

            raw = embed_chips(model, chips, batch_size=self.config.batch_size)
        return l2_normalize(raw)

    def embed_faces(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """Embeddings of detected faces in one image (aligned with :func:`dlib_chip`)."""
        return self.embed_chips([dlib_chip(image, f).crop for f in faces])


_EMBEDDERS: dict[Engine, IdentityEmbedder] = {}


def get_embedder(engine: Engine = "onnx") -> IdentityEmbedder:
    """A shared embedder per engine (the network loads once per process)."""
    if engine not in _EMBEDDERS:
        _EMBEDDERS[engine] = IdentityEmbedder(EmbedConfig(engine=engine))
    return _EMBEDDERS[engine]
