"""Tests for the exact graph rewrite at export: ReLU6 as one Clip, computed "same" padding into the convolution, the
outputs unchanged bit for bit."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from perface.backbones import onnx_rewrite
from perface.backbones.runtime import OnnxGraph, onnx_net


class _Relu6Net(nn.Module):
    """Two convolutions, each followed by ReLU6 written as the TF.js reader writes it (Relu, Minimum, Maximum), the
    second after a "same" padding computed from the input's shape, as the reader does for TensorFlow's."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 3, stride=2)
        self.register_buffer("six", torch.tensor(6.0))
        self.register_buffer("zero", torch.tensor(0.0))

    def relu6(self, x: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(torch.relu(x), self.six), self.zero)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu6(self.a(x * 4.0))
        total = max((y.shape[2] + 1) // 2 * 2 + 1 - y.shape[2], 0)  # TensorFlow's "same" for kernel 3, stride 2
        y = nn.functional.pad(y, (total // 2, total - total // 2, total // 2, total - total // 2))
        return self.relu6(self.b(y)).mean(dim=(2, 3))


def _plain_export(spatial: bool = False) -> bytes:
    """The module as torch exports it, without the rewrite (``spatial``: height and width dynamic too)."""
    buf = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"} if spatial else {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and the tracer's shape notes, as at export
        torch.onnx.export(_Relu6Net().eval(), (torch.rand(2, 3, 16, 16),), buf, dynamo=False, input_names=["input"],
                          output_names=["out"], dynamic_axes={"input": axes, "out": {0: "batch"}}, opset_version=17)
    return buf.getvalue()


def _ops(data: bytes) -> set[str]:
    return {n.op_type for n in onnx.load_from_string(data).graph.node}


def _run(data: bytes, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def test_export_fuses_relu6_and_padding_with_identical_outputs(cache: Path) -> None:
    graph = OnnxGraph("relu6", "k", lambda: (_Relu6Net(), (torch.rand(3, 3, 16, 16),)), ("input",), ("out",))
    net = onnx_net(graph)
    assert net is not None
    cached = (cache / "onnx" / "relu6-k.onnx").read_bytes()
    plain = _plain_export()
    assert {"Min", "Max", "Pad"} <= _ops(plain)
    assert "Clip" in _ops(cached) and not {"Min", "Max", "Pad"} & _ops(cached)
    x = (np.random.default_rng(1).standard_normal((5, 3, 16, 16)) * 3).astype(np.float32)
    assert np.array_equal(net(x)[0], _run(plain, x))  # bit for bit, on inputs the export never saw


def test_a_graph_without_clamps_is_returned_as_it_is() -> None:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(nn.Conv2d(3, 2, 1).eval(), (torch.rand(1, 3, 4, 4),), buf, dynamo=False,
                          input_names=["input"], opset_version=17)
    data = buf.getvalue()
    assert onnx_rewrite.rewritten(data, [{"input": np.zeros((1, 3, 4, 4), np.float32)}]) is data


def test_a_rewrite_that_changes_an_output_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _plain_export()
    rng = np.random.default_rng(2)
    feeds = [{"input": rng.random((n, 3, 16, 16), dtype=np.float32)} for n in (2, 1)]
    real = onnx_rewrite.simplify

    def off_by_a_little(model: onnx.ModelProto, feeds: list) -> onnx.ModelProto:  # a clip bound moved to 1
        out = real(model, feeds)
        out.graph.initializer.append(onnx.numpy_helper.from_array(np.array(1.0, np.float32), "moved_bound"))
        for node in out.graph.node:
            if node.op_type == "Clip":
                node.input[2] = "moved_bound"
        return out

    assert onnx_rewrite.rewritten(plain, feeds) is not plain  # the real rewrite passes its check
    monkeypatch.setattr(onnx_rewrite, "simplify", off_by_a_little)
    assert onnx_rewrite.rewritten(plain, feeds) is plain


def test_padding_is_frozen_only_where_the_batch_is_the_only_dynamic_axis() -> None:
    rng = np.random.default_rng(3)
    feeds = [{"input": rng.random((n, 3, 16, 16), dtype=np.float32)} for n in (2, 1)]
    assert onnx_rewrite.freeze_pads(onnx.load_from_string(_plain_export()), feeds) == 1  # computed, then frozen
    spatial = onnx.load_from_string(_plain_export(spatial=True))
    computed = [n.input[1] for n in spatial.graph.node if n.op_type == "Pad"]
    assert computed and onnx_rewrite.freeze_pads(spatial, feeds) == 0  # its amounts follow the side: left as they are
    assert [n.input[1] for n in spatial.graph.node if n.op_type == "Pad"] == computed
