"""The TF.js graph-model reader: equivalence with TF.js itself, op semantics, errors, ONNX export, batching.

The reference outputs in ``tests/data/tfjs/NAME.npz`` were made by ``tools/make_tfjs_fixtures.py`` with
``@tensorflow/tfjs`` (pure-JavaScript CPU backend) on the source graphs as shipped upstream, so these tests
run offline without Node and without the source package.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from perface.backbones.tfjs import (
    OPS,
    SHIPPED_MODELS,
    TfjsGraphModule,
    UnsupportedOpError,
    load_tfjs_model,
    read_graph_model,
    shipped_model_dir,
    tf_same_padding,
)

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "tfjs"


def _fixture(name: str) -> tuple[np.ndarray, list[str], list[np.ndarray], dict]:
    """(float32 NHWC inputs, output names, reference outputs, npz) of a model's TF.js fixture."""
    data = dict(np.load(FIXTURES / f"{name}.npz"))
    images = data["images"][..., ::-1] if str(data["input_channel_order"]) == "BGR" else data["images"]
    x = images.astype(np.float32) * data["input_scale"] + data["input_offset"] - data["input_mean"]
    names = [str(n) for n in data["output_names"]]
    return x, names, [data[f"output_{i}"] for i in range(len(names))], data


@pytest.fixture(scope="module")
def raw_models() -> dict[str, TfjsGraphModule]:
    return {name: load_tfjs_model(name, repaired=False) for name in SHIPPED_MODELS}


# --- (a) equivalence with TF.js ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_matches_tfjs_cpu_backend(name: str, raw_models: dict[str, TfjsGraphModule]) -> None:
    x, names, refs, data = _fixture(name)
    model = raw_models[name]
    with torch.inference_mode():
        got = model(torch.from_numpy(x), outputs=names)
    for out_name, ref in zip(names, refs, strict=True):
        y = got[out_name].numpy()
        assert y.shape == ref.shape, out_name
        tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
        assert np.abs(y - ref).max() <= tol, f"{name} {out_name}: max diff {np.abs(y - ref).max():.3g} > {tol:.3g}"


@pytest.mark.parametrize("name", [n for n in SHIPPED_MODELS
                                  if not json.loads((shipped_model_dir(n) / "config.json").read_text())["repairs"]])
def test_onnx_graph_matches_tfjs_cpu_backend(name: str) -> None:
    """The exported ONNX graph the runtime uses (:func:`perface.backbones.onnx_graphs.tfjs_graph`) gives TF.js's
    outputs; models with repairs are left out (their graph is meant to differ from the source's)."""
    pytest.importorskip("onnxruntime")
    from perface.backbones.onnx_graphs import tfjs_graph
    from perface.backbones.runtime import onnx_net, use_onnx

    if not use_onnx():
        pytest.skip("ONNX Runtime is switched off (PERFACE_RUNTIME=torch)")
    x, names, refs, _ = _fixture(name)
    net = onnx_net(tfjs_graph(name, tuple(names)))
    assert net is not None, f"{name}: the ONNX export failed its check"
    for out_name, y, ref in zip(names, net(x), refs, strict=True):
        assert y.shape == ref.shape, out_name
        tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
        assert np.abs(y - ref).max() <= tol, f"{name} {out_name}: max diff {np.abs(y - ref).max():.3g} > {tol:.3g}"


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_fixture_and_shipped_files_agree(name: str) -> None:
    """The fixture was made from the same source json as the shipped model, with its input range."""
    _, names, _, data = _fixture(name)
    config = json.loads((shipped_model_dir(name) / "config.json").read_text())
    assert str(data["source_sha256"]) == config["source"]["files"][f"models/{name}.json"]
    assert names == config["outputs"]
    assert np.isclose(float(data["input_scale"]), config["input"]["scale"])
    assert np.allclose(data["input_mean"], config["input"]["mean"])
    assert str(data["input_channel_order"]) == config["input"]["channel_order"]
    assert str(data["backend"]) == "cpu"


def test_shipped_models_describe_themselves(raw_models: dict[str, TfjsGraphModule]) -> None:
    dims = {"mobilefacenet": {"embeddings": 192}, "mobileface": {"batchnorm0/add_1": 256},
            "faceres": {"global_pooling/Mean": 1024, "gender_pred/Sigmoid": 1, "age_pred/Softmax": 100},
            "gear": {"Identity_1": 2, "Identity": 7, "Identity_2": 5},
            "facemesh": {"Identity_2": 1404, "Identity_1": 1}}
    for name, model in raw_models.items():
        size = model.config["input_size"]
        assert model.input_shape == [-1, *size, 3]
        with torch.inference_mode():
            out = model(torch.zeros(1, *size, 3), outputs=list(dims[name]))
        assert {k: v.shape[-1] for k, v in out.items()} == dims[name]


# --- (b) op semantics on a synthetic model ---------------------------------------------------------------


def _s(v: str) -> dict:
    return {"s": base64.b64encode(v.encode()).decode()}


def _ints(v: list[int]) -> dict:
    return {"list": {"i": [str(i) for i in v]}}


def _strs(v: list[str]) -> dict:
    return {"list": {"s": [base64.b64encode(s.encode()).decode() for s in v]}}


def _node(name: str, op: str, inputs: list[str] | None = None, **attr: dict) -> dict:
    return {"name": name, "op": op, "input": inputs or [], "attr": attr}


def _conv_attrs(strides: int, padding: str, dilation: int = 1, fused: list[str] | None = None) -> dict:
    attrs = {"strides": _ints([1, strides, strides, 1]), "padding": _s(padding), "data_format": _s("NHWC"),
             "dilations": _ints([1, dilation, dilation, 1]), "T": {"type": "DT_FLOAT"}}
    if fused:
        attrs |= {"fused_ops": _strs(fused), "num_args": {"i": "1"}, "epsilon": {"f": 0}}
    return attrs


def _encode(value: np.ndarray, quant: str | None) -> tuple[bytes, dict, np.ndarray]:
    """Raw bytes, manifest quantization entry and the value TF.js decodes, for a float32 weight."""
    if quant is None:
        return value.astype("<f4").tobytes(), {}, value.astype(np.float32)
    if quant == "float16":
        half = value.astype("<f2")
        entry = {"quantization": {"dtype": "float16", "original_dtype": "float32"}}
        return half.tobytes(), entry, half.astype(np.float32)
    dtype = np.uint8 if quant == "uint8" else np.uint16
    lo, hi = float(value.min()), float(value.max())
    scale = (hi - lo) / np.iinfo(dtype).max
    q = np.round((value - lo) / scale).astype(dtype)
    decoded = (q.astype(np.float64) * scale + lo).astype(np.float32)
    return q.astype(np.dtype(dtype).newbyteorder("<")).tobytes(), {
        "quantization": {"dtype": quant, "scale": scale, "min": lo, "original_dtype": "float32"}}, decoded


def _write_synthetic(tmp_path: Path, extra_nodes: list[dict] | None = None) -> tuple[Path, dict[str, np.ndarray]]:
    """A small graph model (json + 2 shards) exercising padding, dilation, quantization and fused ops."""
    rng = np.random.default_rng(0)
    weights = [  # name, value, quantization
        ("w1", rng.normal(size=(4, 3, 3, 4)), "uint8"),  # 4x3 kernel: SAME stride 2 pads H (1, 2), W (1, 1)
        ("b1", rng.normal(size=(4,)), "float16"),
        ("w2", rng.normal(size=(3, 3, 4, 5)) * 0.3, None),  # dilation 2
        ("w3", rng.normal(size=(4, 4, 5, 2)) * 0.3, "float16"),  # depthwise, multiplier 2
        ("w4", rng.normal(size=(6, 10)), "uint16"),  # used with transpose_b
        ("b4", rng.normal(size=(6,)), None),
        ("w5", rng.normal(size=(2, 2, 3, 2)), None),  # explicit padding
    ]
    blobs, specs, decoded = [], [], {}
    for name, value, quant in weights:
        raw, extra, dec = _encode(np.asarray(value, dtype=np.float32), quant)
        blobs.append(raw)
        specs.append({"name": name, "shape": list(value.shape), "dtype": "float32", **extra})
        decoded[name] = dec
    blobs.append(np.array([1, 2], dtype="<i4").tobytes())
    specs.append({"name": "axes", "shape": [2], "dtype": "int32"})
    data = b"".join(blobs)
    half = len(data) // 2
    (tmp_path / "group1-shard1of2.bin").write_bytes(data[:half])
    (tmp_path / "group1-shard2of2.bin").write_bytes(data[half:])
    nodes = [
        _node("x", "Placeholder", shape={"shape": {"dim": [{"size": "-1"}, {"size": "9"}, {"size": "11"},
                                                         {"size": "3"}]}}, dtype={"type": "DT_FLOAT"}),
        *(_node(name, "Const", dtype={"type": "DT_FLOAT"}) for name, _, _ in weights),
        _node("axes", "Const", dtype={"type": "DT_INT32"}),
        _node("conv1", "_FusedConv2D", ["x", "w1", "b1"], **_conv_attrs(2, "SAME", fused=["BiasAdd", "Relu"])),
        _node("conv2", "Conv2D", ["conv1", "w2"], **_conv_attrs(1, "SAME", dilation=2)),
        _node("dw", "DepthwiseConv2dNative", ["conv2", "w3"], **_conv_attrs(2, "SAME")),
        _node("pool", "MaxPool", ["dw"], ksize=_ints([1, 2, 2, 1]), strides=_ints([1, 2, 2, 1]), padding=_s("SAME")),
        _node("avg", "AvgPool", ["conv2"], ksize=_ints([1, 3, 3, 1]), strides=_ints([1, 2, 2, 1]), padding=_s("SAME")),
        _node("mean", "Mean", ["pool", "axes"], keep_dims={"b": False}),
        _node("fc", "_FusedMatMul", ["mean", "w4", "b4"], transpose_a={"b": False}, transpose_b={"b": True},
              fused_ops=_strs(["BiasAdd", "Relu"]), num_args={"i": "1"}),
        _node("prob", "Softmax", ["fc"]),
        _node("conv3", "Conv2D", ["x", "w5"], **(_conv_attrs(1, "EXPLICIT")
                                                 | {"explicit_paddings": _ints([0, 0, 1, 0, 2, 1, 0, 0])})),
        *(extra_nodes or []),
    ]
    model = {
        "format": "graph-model", "generatedBy": "test", "convertedBy": "test",
        "signature": {"outputs": {k: {"name": f"{k}:0"} for k in ("prob", "avg", "conv3")}},
        "modelTopology": {"node": nodes, "library": {}, "versions": {}},
        "weightsManifest": [{"paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"], "weights": specs}],
    }
    path = tmp_path / "model.json"
    path.write_text(json.dumps(model))
    return path, decoded


def _np_conv(x: np.ndarray, w: np.ndarray, stride: int, pads: tuple[int, int, int, int], dilation: int = 1,
             depthwise: bool = False) -> np.ndarray:
    """Direct NHWC convolution (float64) with explicit (top, bottom, left, right) zero padding."""
    top, bottom, left, right = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    kh, kw = w.shape[:2]
    ho = (xp.shape[1] - (kh - 1) * dilation - 1) // stride + 1
    wo = (xp.shape[2] - (kw - 1) * dilation - 1) // stride + 1
    out = 0.0
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i * dilation : i * dilation + stride * (ho - 1) + 1 : stride,
                       j * dilation : j * dilation + stride * (wo - 1) + 1 : stride]
            if depthwise:
                out = out + (patch[..., :, None] * w[i, j]).reshape(*patch.shape[:3], -1)
            else:
                out = out + patch @ w[i, j]
    return out


def _np_pool(x: np.ndarray, k: int, stride: int, pads: tuple[int, int, int, int], kind: str) -> np.ndarray:
    """Max (padding never wins) or average (padding not counted) pooling, NHWC, float64."""
    top, bottom, left, right = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=np.nan)
    ho, wo = (xp.shape[1] - k) // stride + 1, (xp.shape[2] - k) // stride + 1
    windows = np.stack([xp[:, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]
                        for i in range(k) for j in range(k)])
    return np.nanmax(windows, 0) if kind == "max" else np.nanmean(windows, 0)


def test_tf_same_padding_table() -> None:
    # (size, kernel, stride, dilation) -> TensorFlow's (before, after): the odd pixel goes after
    table = {(9, 3, 2, 1): (1, 1), (9, 4, 2, 1): (1, 2), (10, 3, 2, 1): (0, 1), (11, 3, 2, 1): (1, 1),
             (5, 4, 2, 1): (1, 2), (6, 4, 2, 1): (1, 1), (5, 3, 1, 2): (2, 2), (3, 2, 2, 1): (0, 1),
             (6, 3, 2, 1): (0, 1), (112, 3, 2, 1): (0, 1), (7, 7, 1, 1): (3, 3), (4, 1, 2, 1): (0, 0)}
    for args, want in table.items():
        assert tf_same_padding(*args) == want, args


def test_synthetic_graph_matches_direct_computation(tmp_path: Path) -> None:
    path, w = _write_synthetic(tmp_path)
    graph = read_graph_model(path)
    for name, value in w.items():  # quantized weights decode as TF.js decodes them
        np.testing.assert_array_equal(graph.weights[name], value)
    model = TfjsGraphModule(graph).eval()
    assert model.output_names == ["prob", "avg", "conv3"]
    x = np.random.default_rng(1).normal(size=(2, 9, 11, 3))
    with torch.inference_mode():
        got = model(torch.from_numpy(x.astype(np.float32)), outputs=["conv1", "conv2", "dw", "pool", "fc",
                                                                     "prob", "avg", "conv3"])
    w64 = {k: v.astype(np.float64) for k, v in w.items()}
    ref = {"conv1": np.maximum(_np_conv(x, w64["w1"], 2, (1, 2, 1, 1)) + w64["b1"], 0)}
    ref["conv2"] = _np_conv(ref["conv1"], w64["w2"], 1, (2, 2, 2, 2), dilation=2)
    ref["dw"] = _np_conv(ref["conv2"], w64["w3"], 2, (1, 2, 1, 1), depthwise=True)
    ref["pool"] = _np_pool(ref["dw"], 2, 2, (0, 1, 0, 1), "max")
    ref["fc"] = np.maximum(ref["pool"].mean(axis=(1, 2)) @ w64["w4"].T + w64["b4"], 0)
    e = np.exp(ref["fc"] - ref["fc"].max(1, keepdims=True))
    ref["prob"] = e / e.sum(1, keepdims=True)
    ref["avg"] = _np_pool(ref["conv2"], 3, 2, (1, 1, 0, 1), "avg")
    ref["conv3"] = _np_conv(x, w64["w5"], 1, (1, 0, 2, 1))
    shapes = {"conv1": (2, 5, 6, 4), "conv2": (2, 5, 6, 5), "dw": (2, 3, 3, 10), "pool": (2, 2, 2, 10),
              "fc": (2, 6), "avg": (2, 3, 3, 5), "conv3": (2, 9, 13, 2)}
    for name, want in ref.items():
        assert got[name].shape == shapes.get(name, want.shape), name
        np.testing.assert_allclose(got[name].numpy(), want, rtol=1e-4, atol=1e-4, err_msg=name)


def test_weights_are_parameters_and_train(tmp_path: Path) -> None:
    path, _ = _write_synthetic(tmp_path)
    model = TfjsGraphModule(read_graph_model(path))
    params = dict(model.named_parameters())
    assert set(params) == {f"consts.{n}" for n in ("w1", "b1", "w2", "w3", "w4", "b4", "w5")}
    assert model.const("axes").dtype == torch.int32 and "consts.axes" not in model.state_dict()
    out = model(torch.randn(3, 9, 11, 3))
    (out["prob"][:, 0].sum() + out["avg"].sum() + out["conv3"].sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params.values())


def test_safetensors_weights_equal_bin_weights() -> None:
    folder = shipped_model_dir("faceres")
    graph = read_graph_model(folder / "model.json", folder / "weights.safetensors")
    assert all(v.dtype in (np.float32, np.int32) for v in graph.weights.values())
    kernel = graph.weights["feats/kernel"]  # float16-quantized upstream: exactly representable in float16
    np.testing.assert_array_equal(kernel.astype(np.float16).astype(np.float32), kernel)


# --- (c) unknown ops fail at build time ----------------------------------------------------------------------


def test_unknown_op_raises_at_build_naming_it(tmp_path: Path) -> None:
    path, _ = _write_synthetic(tmp_path, extra_nodes=[_node("weird/node", "FancyOp", ["conv3"])])
    graph = read_graph_model(path)  # reading is fine
    assert "FancyOp" not in OPS
    with pytest.raises(UnsupportedOpError, match=r"'FancyOp'.*'weird/node'") as err:
        TfjsGraphModule(graph)
    assert err.value.op == "FancyOp" and err.value.node == "weird/node"


def test_unsupported_fused_activation_raises_at_build(tmp_path: Path) -> None:
    bad = _node("bad", "_FusedConv2D", ["x", "w5", "b4"], **_conv_attrs(1, "VALID", fused=["BiasAdd", "Gelu"]))
    path, _ = _write_synthetic(tmp_path, extra_nodes=[bad])
    with pytest.raises(UnsupportedOpError, match="Gelu"):
        TfjsGraphModule(read_graph_model(path))


# --- (d) ONNX export -----------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
def test_onnx_export_matches_torch(tmp_path: Path) -> None:
    """Traced export (spatial sizes become constants, which the traced shapes are) with a dynamic batch."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = load_tfjs_model("mobilefacenet")  # repaired: the graph one would deploy
    x, _, _, _ = _fixture("mobilefacenet")
    out = tmp_path / "mobilefacenet.onnx"
    torch.onnx.export(model, (torch.zeros(2, 112, 112, 3),), str(out), dynamo=False, input_names=["input"],
                      output_names=["embedding"], dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
                      opset_version=17)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (onnx_y,) = session.run(None, {"input": x})  # batch 4, traced with batch 2
    with torch.inference_mode():
        torch_y = model(torch.from_numpy(x)).numpy()
    assert onnx_y.shape == (4, 192)
    assert np.abs(onnx_y - torch_y).max() < 1e-4


# --- (e) batching, intermediate outputs, devices ---------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_batch_equals_single_runs(name: str, raw_models: dict[str, TfjsGraphModule]) -> None:
    x, names, _, _ = _fixture(name)
    x = torch.from_numpy(x[:3])
    model = raw_models[name]
    with torch.inference_mode():
        batch = model(x, outputs=names)
        singles = [model(x[i : i + 1], outputs=names) for i in range(3)]
    for out_name in names:
        joined = torch.cat([s[out_name] for s in singles])
        scale = max(1.0, float(batch[out_name].abs().max()))
        assert torch.allclose(batch[out_name], joined, rtol=0, atol=1e-5 * scale), out_name


def test_intermediate_outputs_and_return_types(raw_models: dict[str, TfjsGraphModule]) -> None:
    model = raw_models["faceres"]
    x = torch.from_numpy(_fixture("faceres")[0][:1])
    with torch.inference_mode():
        default = model(x)
        feats = model(x, outputs="feats/Relu")
        both = model(x, outputs=["conv_pw_13_relu/clip_by_value", "global_pooling/Mean"])
    assert isinstance(default, dict) and list(default) == model.output_names
    assert isinstance(feats, torch.Tensor) and feats.shape == (1, 256)
    assert both["conv_pw_13_relu/clip_by_value"].shape == (1, 7, 7, 1024)
    torch.testing.assert_close(both["conv_pw_13_relu/clip_by_value"].mean((1, 2)), both["global_pooling/Mean"])
    assert isinstance(raw_models["mobileface"](torch.zeros(1, 112, 112, 3)), torch.Tensor)
    with pytest.raises(KeyError, match="no node"):
        model(x, outputs="not/a/node")


def test_moves_with_to_device() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_tfjs_model("gear", device=device)
    x, names, refs, _ = _fixture("gear")
    assert all(t.device.type == device for t in [*model.parameters(), *model.buffers()])
    with torch.inference_mode():
        out = model(model.preprocess(_fixture("gear")[3]["images"]), outputs=names)
    for out_name, ref in zip(names, refs, strict=True):
        assert out[out_name].device.type == device
        assert np.abs(out[out_name].cpu().numpy() - ref).max() < 1e-4
    assert np.allclose(model.preprocess(_fixture("gear")[3]["images"]).cpu().numpy(), x)


def test_preprocess_follows_the_config(raw_models: dict[str, TfjsGraphModule]) -> None:
    """``preprocess`` makes exactly the fixture's float input (faceres: BGR minus the Caffe mean)."""
    for name, model in raw_models.items():
        x, _, _, data = _fixture(name)
        np.testing.assert_allclose(model.preprocess(data["images"]).numpy(), x, rtol=0, atol=1e-5)
    assert raw_models["faceres"].input_bgr and not raw_models["mobilefacenet"].input_bgr
