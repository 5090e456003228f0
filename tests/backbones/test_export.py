"""Tests for ONNX export (skipped when the optional onnx package is missing)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from perface.backbones.export import export_onnx


def test_export_dlib_resnet_dynamic_batch(tmp_path: Path, chips: np.ndarray, dlib_model) -> None:
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort

    report = export_onnx("dlib-resnet", tmp_path / "dlib.onnx")
    assert report["ok"] and report["max_abs_diff"] <= 1e-4
    assert report["output_dim"] == 128 and report["input_shape"] == ["batch", 3, 150, 150]
    meta = {p.key: p.value for p in onnx.load(report["path"], load_external_data=False).metadata_props}
    assert meta["perface.backbone"] == "dlib-resnet" and "122.782" in meta["perface.preprocess"]
    sess = ort.InferenceSession(report["path"], providers=["CPUExecutionProvider"])
    x = dlib_model.preprocess(chips[:5]).numpy()
    ref = dlib_model(dlib_model.preprocess(chips[:5])).detach().numpy()
    for sl in (slice(0, 1), slice(0, 5)):
        got = sess.run(None, {"input": x[sl]})[0]
        np.testing.assert_allclose(got, ref[sl], rtol=0, atol=1e-4)


@pytest.mark.slow
def test_export_iresnet(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    report = export_onnx("iresnet18", tmp_path / "r18.onnx", pretrained=False)
    assert report["ok"] and report["output_dim"] == 512 and report["input_shape"][2:] == [112, 112]


def test_missing_onnx_gives_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match="perface\\[onnx\\]"):
        export_onnx("dlib-resnet", tmp_path / "x.onnx")
