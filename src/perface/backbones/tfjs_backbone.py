"""A shipped TF.js face network as a PerFace backbone: named stages, freezing, NCHW chips in and out.

:class:`perface.metric.model.PerFaceModel` reads pooled features from a backbone's *stages* (a chain of
modules, each fed the previous one's output) and fine-tunes it from a chosen stage. A TF.js graph is not a
chain of modules, but it has *cut points*: nodes through which every path from the input to the output
passes, where one tensor carries all that the rest of the graph needs (the ends of residual blocks). This
module finds them, keeps a few evenly spaced ones as stages ``stage1 .. stageK`` plus ``head`` (the model's
identity output), and runs each stage as a slice of the graph. Stages take and give NCHW tensors (the
PerFace convention); the graph's NHWC layout stays inside.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .onnx_graphs import CAFFE_BGR, TFJS_BACKBONES, TFJS_TAILS
from .tfjs import TfjsGraphModule, load_tfjs_model

_CAFFE_BGR = torch.from_numpy(CAFFE_BGR)


def cut_points(module: TfjsGraphModule, output: str) -> list[str]:
    """Nodes (in execution order) that every input-to-``output`` path passes through: safe stage boundaries."""
    steps = module._plan((output,))
    pos = {s.name: i for i, s in enumerate(steps)}
    last_read: dict[str, int] = {}
    for i, s in enumerate(steps):
        for a in s.args:
            if a in pos or a in module.input_names:
                last_read[a] = i
    cuts = []
    live_until = -1  # the furthest step that reads a value made before the current step
    for i, s in enumerate(steps):
        if live_until <= i and i < len(steps) - 1 and last_read.get(s.name, -1) > i:
            cuts.append(s.name)
        live_until = max(live_until, last_read.get(s.name, -1))
    # a cut is valid only when nothing made before it is read after it
    valid = []
    for c in cuts:
        i = pos[c]
        if all(last_read.get(steps[j].name, -1) <= i for j in range(i)) and all(
                last_read.get(n, -1) <= i for n in module.input_names):
            valid.append(c)
    return valid


class _Stage(nn.Module):
    """Graph nodes from just after ``start`` (or the input) up to and including ``stop``, NCHW in and out."""

    def __init__(self, graph: TfjsGraphModule, start: str | None, stop: str) -> None:
        super().__init__()
        self.graph = [graph]  # a list, so the graph's parameters are registered once (by the backbone)
        self.start, self.stop = start, stop
        steps = graph._plan((stop,))
        names = [s.name for s in steps]
        self.steps = steps[names.index(start) + 1:] if start is not None else steps

    def forward(self, x: Tensor) -> Tensor:
        g = self.graph[0]
        env = {self.start or g.input_names[0]: x.permute(0, 2, 3, 1) if x.ndim == 4 else x}
        for step in self.steps:
            env[step.name] = g._ops[step.name].fn(*[env[a] if a in env else g.const(a) for a in step.args])
        y = env[self.stop]
        return y.permute(0, 3, 1, 2) if y.ndim == 4 else y.reshape(y.shape[0], -1)


class TfjsBackbone(nn.Module):
    """A shipped TF.js recognizer with the backbone protocol of :class:`perface.backbones.DlibResNet`."""

    def __init__(self, name: str, n_stages: int = 5) -> None:
        super().__init__()
        if name not in TFJS_BACKBONES:
            raise ValueError(f"unknown TF.js backbone {name!r}; choose from {', '.join(TFJS_BACKBONES)}")
        model, output, self.input_size, self.preprocessing = TFJS_BACKBONES[name]
        self.name = name
        self.graph = load_tfjs_model(model)
        output = output or self.graph.output_names[0]
        cuts = cut_points(self.graph, output)
        picks = [cuts[round(k * (len(cuts) - 1) / max(1, n_stages - 1))] for k in range(n_stages)] if cuts else []
        picks = list(dict.fromkeys(picks))
        tails = TFJS_TAILS.get(name, ())  # layers past the identity output, each fed the one before
        stops = [*picks, output, *(node for _, node in tails)]
        bounds = [None, *stops[:-1]]
        self.stage_names = [f"stage{i + 1}" for i in range(len(picks))] + ["head"] + [t for t, _ in tails]
        self.stage_nodes = dict(zip(self.stage_names, stops, strict=True))
        self._stages = nn.ModuleDict({n: _Stage(self.graph, b, stop)
                                      for n, b, stop in zip(self.stage_names, bounds, stops, strict=True)})
        self.embedding_dim = int(self(self.preprocess(np.zeros((1, self.input_size, self.input_size, 3),
                                                               np.uint8))).shape[1])

    def preprocess(self, chips: np.ndarray | Sequence[np.ndarray]) -> Tensor:
        """uint8 RGB chips of the input size -> the network's normalised NCHW float32 input."""
        x = torch.as_tensor(np.ascontiguousarray(np.stack(list(chips)) if not isinstance(chips, np.ndarray)
                                                 else chips))
        if x.ndim == 3:
            x = x[None]
        x = x.to(dtype=torch.float32, device=next(self.parameters()).device)
        if self.preprocessing == "bgr_caffe":
            x = x.flip(-1) - _CAFFE_BGR.to(x.device)
        elif self.preprocessing == "rgb128":
            x = (x - 127.5) / 128.0  # "rgb255": the graph normalises its 0..255 input itself
        return x.permute(0, 3, 1, 2).contiguous()

    def stages(self) -> list[tuple[str, nn.Module]]:
        """``[(name, module)]`` input to output; ``head`` gives the identity descriptor, stages after it (FaceRes's
        ``feats``) the layers beyond."""
        return [(n, self._stages[n]) for n in self.stage_names]

    def forward(self, x: Tensor) -> Tensor:
        """The identity descriptor (``head``'s output)."""
        for name, mod in self.stages():
            x = mod(x)
            if name == "head":
                break
        return x

    def freeze_until(self, level: str | None) -> TfjsBackbone:
        """Freeze the stages up to ``level`` (inclusive), train the rest; None trains all, "head" none."""
        last = -1 if level is None else self.stage_names.index(level)
        owner: dict[int, int] = {}
        for i, name in enumerate(self.stage_names):
            for step in self._stages[name].steps:
                for a in self.graph._args[step.name]:
                    if a in self.graph.const_names:
                        owner.setdefault(id(self.graph.const(a)), i)
        for p in self.graph.parameters():
            p.requires_grad_(owner.get(id(p), 0) > last)
        return self

    def _stage_consts(self, name: str) -> list[str]:
        """TF names of the constants (weights) read by a stage's nodes."""
        return sorted({a for s in self._stages[name].steps for a in self.graph._args[s.name]
                       if a in self.graph.const_names})

    def stage_state_keys(self, name: str) -> list[str]:
        """``state_dict`` keys (relative to this module) of a stage's weights, for saving a fine-tuned stage."""
        return [f"graph.consts.{self.graph.const_names[a]}" for a in self._stage_consts(name)]

    def trainable_stages(self) -> list[str]:
        """Stages with at least one trainable weight."""
        return [n for n in self.stage_names if any(self.graph.const(a).requires_grad for a in self._stage_consts(n))]


class TfjsOutputs(nn.Module):
    """A TF.js graph module returning a fixed tuple of output nodes (None or empty: its own outputs), for export."""

    def __init__(self, graph: TfjsGraphModule, outputs: Sequence[str] | None) -> None:
        super().__init__()
        self.graph = graph
        self.outputs = list(outputs or graph.output_names)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        res = self.graph(x, outputs=self.outputs)
        return tuple(res[n] for n in self.outputs)
