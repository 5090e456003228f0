"""ONNX export of the PerFace backbones, verified against PyTorch with onnxruntime.

Why: ONNX lets the embedders run without PyTorch (onnxruntime on CPU/GPU, other runtimes, browsers). Each
export is checked numerically before it is reported as good.

The exported graph takes the *normalised* float32 tensor ``input`` (N,3,S,S; N dynamic) that the model's
``preprocess`` makes, and returns ``embedding`` (N,D). The preprocessing is written into the model's
metadata (``perface.preprocess``), e.g. for dlib-resnet ``(rgb - [122.782, 117.001, 104.298]) / 256``.
Needs the optional ``onnx`` package (``pip install 'perface[onnx]'``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import load_backbone

__all__ = ["export_onnx"]

_PREPROCESS = {
    "dlib-resnet": "RGB uint8 150x150 chip (dlib.get_face_chip, padding 0.25) -> NCHW float32 "
    "(x - [122.782, 117.001, 104.298]) / 256; output = dlib compute_face_descriptor (not L2-normalised)",
    "iresnet": "RGB uint8 112x112 crop (insightface norm_crop) -> NCHW float32 (x / 255 - 0.5) / 0.5; "
    "output = ArcFace embedding (compare with cosine)",
}


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError as e:
        raise ImportError(
            "ONNX export needs the 'onnx' package: pip install 'perface[onnx]' (or pip install onnx)"
        ) from e
    return onnx


def export_onnx(
    name: str,
    out_path: str | Path,
    weights: str | Path | None = None,
    opset: int = 17,
    *,
    pretrained: bool = True,
    atol: float = 1e-4,
    verify_batch: int = 3,
    seed: int = 0,
    strict: bool = True,
) -> dict[str, Any]:
    """Export backbone ``name`` (see :func:`perface.backbones.load_backbone`) to ``out_path`` and verify it.

    The graph has a dynamic batch axis. Verification runs ``verify_batch`` random uint8 chips (a batch size
    different from the one used for tracing) through PyTorch and onnxruntime and compares the outputs.
    Returns ``{"path", "name", "opset", "input_shape", "output_dim", "max_abs_diff", "atol", "ok",
    "bytes"}``; with ``strict`` a difference above ``atol`` raises :class:`RuntimeError`.
    """
    onnx = _require_onnx()
    import onnxruntime as ort

    model = load_backbone(name, weights=weights, device="cpu", pretrained=pretrained)
    size = int(model.input_size)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    trace_x = model.preprocess(rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation / tracer chatter
        torch.onnx.export(
            model,
            (trace_x,),
            str(out_path),
            dynamo=False,
            input_names=["input"],
            output_names=["embedding"],
            dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
        )

    proto = onnx.load(str(out_path))
    family = "dlib-resnet" if model.name == "dlib-resnet" else "iresnet"
    meta = {
        "perface.backbone": model.name,
        "perface.input_size": str(size),
        "perface.embedding_dim": str(model.embedding_dim),
        "perface.preprocess": _PREPROCESS[family],
    }
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out_path))

    x = model.preprocess(rng.integers(0, 256, (verify_batch, size, size, 3), dtype=np.uint8))
    with torch.inference_mode():
        ref = model(x).numpy()
    sess = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"])
    got = sess.run(["embedding"], {"input": x.numpy()})[0]
    diff = float(np.abs(got - ref).max())
    report = {
        "path": str(out_path),
        "name": model.name,
        "opset": opset,
        "input_shape": ["batch", 3, size, size],
        "output_dim": int(model.embedding_dim),
        "max_abs_diff": diff,
        "atol": atol,
        "ok": diff <= atol,
        "bytes": out_path.stat().st_size,
    }
    if strict and not report["ok"]:
        raise RuntimeError(f"ONNX export of {name} differs from PyTorch: max abs diff {diff:.3g} > {atol}")
    return report
