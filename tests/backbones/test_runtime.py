"""Tests for the ONNX Runtime session cache: threads from PERFACE_THREADS, export verified once, PyTorch fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from perface.backbones import runtime
from perface.backbones.runtime import OnnxGraph, onnx_net, threads


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.relu(self.conv(x))
        return y.mean(dim=(2, 3)), y.amax(dim=(2, 3))


def _graph(name: str, key: str = "k", atol: float = 1e-5, calls: list[int] | None = None) -> OnnxGraph:
    def build():
        if calls is not None:
            calls.append(1)
        return _Tiny(), (torch.rand(3, 3, 8, 8),)

    return OnnxGraph(name, key, build, ("input",), ("mean", "max"), atol=atol)


def test_threads_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    assert threads() == runtime.DEFAULT_THREADS
    monkeypatch.setenv(runtime.THREADS_ENV, "3")
    assert threads() == 3 and runtime.session_options().intra_op_num_threads == 3
    for bad in ("0", "two"):
        monkeypatch.setenv(runtime.THREADS_ENV, bad)
        with pytest.raises(ValueError, match="PERFACE_THREADS"):
            threads()


def test_export_once_verified_and_equal_to_torch(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runtime.THREADS_ENV, "1")
    calls: list[int] = []
    net = onnx_net(_graph("tiny", calls=calls))
    assert net is not None and calls == [1]
    assert net.session.get_session_options().intra_op_num_threads == 1
    assert (cache / "onnx" / "tiny-k.onnx").is_file()
    x = torch.rand(5, 3, 8, 8)
    with torch.inference_mode():
        ref = _Tiny()(x)
    got = net(x.numpy())
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g, r.numpy(), atol=1e-5)
    assert onnx_net(_graph("tiny", calls=calls)) is net  # built once per process
    monkeypatch.setattr(runtime, "_NETS", {})
    assert onnx_net(_graph("tiny", calls=calls)) is not None and calls == [1]  # a new process loads the file


def test_a_failed_check_or_torch_runtime_gives_none(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.warns(UserWarning, match="differs from PyTorch"):
        assert onnx_net(_graph("strict", atol=-1.0)) is None
    assert not (cache / "onnx" / "strict-k.onnx").exists()  # a graph that failed its check is never kept
    monkeypatch.setenv(runtime.RUNTIME_ENV, "torch")
    assert onnx_net(_graph("tiny2")) is None
