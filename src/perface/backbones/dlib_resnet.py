"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) in plain PyTorch.

Why: dlib's 128-d descriptor is PerFace's reference face embedding. A PyTorch port gives batched CPU/GPU
inference, gradients for fine-tuning, and ONNX export, while reproducing dlib's numbers (the weights are read
directly from dlib's ``.dat`` file, see :mod:`perface.backbones.dlib_dat`).

Architecture (``anet_type`` of dlib's ``examples/dnn_face_recognition_ex.cpp``), input to output:

* input ``input_rgb_image_sized<150>``: RGB, ``(pixel - avg) / 256`` with avg = (122.782, 117.001, 104.298);
* ``stem``: conv 7x7/2 (32, no padding) -> affine -> relu -> max-pool 3x3/2 (no padding);
* ``level1``: 3 x ``ares<32>``; ``level2``: ``ares_down<64>`` + 3 x ``ares<64>``;
  ``level3``: ``ares_down<128>`` + 2 x ``ares<128>``; ``level4``: ``ares_down<256>`` + 2 x ``ares<256>``;
  ``level5``: ``ares_down<256>``;
* ``head``: global average pool -> ``fc_no_bias<128>``.

``ares`` is ``relu(x + affine(conv3x3(relu(affine(conv3x3(x))))))``. ``ares_down`` uses a stride-2 3x3 conv
*without padding* in the block and a 2x2/2 average pool on the shortcut; dlib's ``add_prev`` adds tensors of
different shapes by zero-padding both to the larger channel count / height / width (at the end). That padding
matters: in ``level4`` the block gives 3x3 and the shortcut 4x4, in ``level5`` 1x1 and 2x2.
``affine`` is dlib's frozen batch norm (``y = gamma * x + beta`` per channel). Convolutions have biases.

The network outputs dlib's raw descriptor (exactly what ``compute_face_descriptor`` returns); it is *not*
L2-normalised (dlib's own descriptors have norms around 1.5). Use ``l2_normalize`` for unit vectors.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .dlib_dat import DlibNet, read_dlib_net
from .onnx_graphs import DLIB_MEAN_RGB

__all__ = [
    "DLIB_MEAN_RGB",
    "LEVELS",
    "STAGES",
    "Affine",
    "DlibResBlock",
    "DlibResNet",
    "dlib_expected_kinds",
    "l2_normalize",
    "preprocess_chips",
]

#: Feature levels, input to output (``freeze_until``/``forward_features`` use these names).
LEVELS: tuple[str, ...] = ("stem", "level1", "level2", "level3", "level4", "level5")
#: All stages including the pooling+fc ``head`` (``forward_from`` accepts these).
STAGES: tuple[str, ...] = (*LEVELS, "head")

# (channels, number of blocks, first block downsamples) for level1..level5
_LEVEL_SPEC: tuple[tuple[int, int, bool], ...] = (
    (32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True)
)


def preprocess_chips(
    chips: np.ndarray | Sequence[np.ndarray],
    mean: np.ndarray | Sequence[float] = DLIB_MEAN_RGB,
    device: str | torch.device | None = None,
    size: int | None = 150,
) -> torch.Tensor:
    """uint8 RGB chips (N,H,W,3 array, list of H,W,3, or one H,W,3) -> float32 N,3,H,W ``(x - mean) / 256``.

    This is dlib's ``input_rgb_image_sized`` normalisation, bit for bit (float32 subtraction, exact /256).
    ``size`` checks the chip side (dlib's net needs 150x150 chips as made by ``dlib.get_face_chip``).
    """
    arr = _stack_chips(chips, size)
    x = torch.from_numpy(arr).to(device=device).permute(0, 3, 1, 2).float()
    m = torch.as_tensor(np.asarray(mean, dtype=np.float32), device=x.device).view(1, 3, 1, 1)
    return ((x - m) / 256.0).contiguous()


def _stack_chips(chips: np.ndarray | Sequence[np.ndarray], size: int | None) -> np.ndarray:
    """Stack chips into a contiguous N,H,W,3 uint8 array and validate their shape."""
    if isinstance(chips, np.ndarray):
        arr = chips[None] if chips.ndim == 3 else chips
    else:
        if len(chips) == 0:
            raise ValueError("no chips given")
        arr = np.stack([np.asarray(c) for c in chips])
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"chips must be RGB images of shape (H, W, 3); got array of shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"chips must be uint8 RGB (0..255); got {arr.dtype}")
    if size is not None and arr.shape[1:3] != (size, size):
        raise ValueError(
            f"chips must be {size}x{size} (got {arr.shape[1]}x{arr.shape[2]}); align and crop faces first, "
            "e.g. dlib.get_face_chip(img, shape, size=150, padding=0.25) for the dlib backbone"
        )
    return np.ascontiguousarray(arr)


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Row-wise L2 normalisation (descriptors -> unit vectors for cosine similarity)."""
    return F.normalize(x, dim=-1, eps=eps)


def _zero_pad_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib ``add_prev``: sum of two N,C,H,W tensors zero-padded (at the end) to the larger C, H and W."""
    if a.shape == b.shape:
        return a + b
    c = max(a.shape[1], b.shape[1])
    h = max(a.shape[2], b.shape[2])
    w = max(a.shape[3], b.shape[3])
    a = F.pad(a, (0, w - a.shape[3], 0, h - a.shape[2], 0, c - a.shape[1]))
    b = F.pad(b, (0, w - b.shape[3], 0, h - b.shape[2], 0, c - b.shape[1]))
    return a + b


class Affine(nn.Module):
    """dlib ``affine_`` layer: per-channel ``gamma * x + beta`` (batch norm folded at training end)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


class DlibResBlock(nn.Module):
    """dlib ``ares`` (``down=False``) or ``ares_down`` (``down=True``) residual block."""

    def __init__(self, in_channels: int, channels: int, down: bool) -> None:
        super().__init__()
        if not down and in_channels != channels:
            raise ValueError("a non-downsampling dlib block keeps the channel count")
        self.down = down
        # dlib con_<N,3,3,s,s>: padding defaults to 0 when stride != 1, else 1
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.affine1 = Affine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1)
        self.affine2 = Affine(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.affine1(self.conv1(x)))
        y = self.affine2(self.conv2(y))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_zero_pad_add(y, shortcut))


class _Stem(nn.Module):
    """conv 7x7/2 (32) -> affine -> relu -> max-pool 3x3/2, no padding anywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 7, stride=2, padding=0)
        self.affine = Affine(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, 2)


class _Head(nn.Module):
    """Global average pooling then the 256 -> 128 fully connected layer without bias."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(256, 128, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


def dlib_expected_kinds() -> list[str]:
    """Layer-kind signature (as :meth:`DlibNet.kinds`) of dlib's ``anet_type``, input to output."""
    kinds = ["con", "affine", "relu", "max_pool"]
    for _, n, down in _LEVEL_SPEC:
        for i in range(n):
            kinds += ["T", "con", "affine", "relu", "con", "affine"]
            kinds += ["T", "T", "avg_pool"] if (down and i == 0) else []
            kinds += ["add_prev", "relu"]
    return kinds + ["avg_pool", "fc"]


class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet; ``forward`` maps normalised N,3,150,150 input to N,128 descriptors.

    Build with :meth:`from_dat` (or :func:`perface.backbones.load_backbone`) to get dlib's weights. Input must
    be made with :meth:`preprocess` / :func:`preprocess_chips` from 150x150 RGB chips aligned like
    ``dlib.get_face_chip``. Fine-tuning hooks: :meth:`freeze_until`, :meth:`forward_features`,
    :meth:`forward_from`.
    """

    input_size: int = 150
    embedding_dim: int = 128
    name: str = "dlib-resnet"
    is_fused: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean_rgb", torch.from_numpy(DLIB_MEAN_RGB.copy()), persistent=False)
        self.stem = _Stem()
        in_ch = 32
        for i, (ch, n, down) in enumerate(_LEVEL_SPEC, start=1):
            blocks = [DlibResBlock(in_ch if j == 0 else ch, ch, down and j == 0) for j in range(n)]
            self.add_module(f"level{i}", nn.Sequential(*blocks))
            in_ch = ch
        self.head = _Head()

    # ------------------------------------------------------------------ construction / weights
    @classmethod
    def from_dat(cls, path: str | Path | None = None) -> DlibResNet:
        """Model with weights read from a dlib ``.dat`` (default: the one in ``face_recognition_models``)."""
        return cls().load_dat(path)

    def load_dat(self, path: str | Path | DlibNet | None = None) -> DlibResNet:
        """Copy weights (and input means) from a dlib ``.dat`` file or an already parsed :class:`DlibNet`."""
        if self.is_fused:
            raise ValueError("load weights into an unfused DlibResNet, then call fused()")
        net = path if isinstance(path, DlibNet) else read_dlib_net(path)
        if net.input.kind != "input_rgb_image_sized" or tuple(net.input.attrs["size"]) != (150, 150):
            raise ValueError(f"expected a 150x150 input_rgb_image_sized net, got {net.input}")
        if net.kinds() != dlib_expected_kinds():
            raise ValueError("the .dat is not dlib's face-recognition ResNet (layer structure differs)")
        src = net.param_layers()
        dst = list(self._dlib_param_modules())
        if len(src) != len(dst):  # pragma: no cover - guaranteed by the signature check
            raise ValueError(f"{len(src)} parameter layers in the .dat, {len(dst)} in the model")
        with torch.no_grad():
            for la, (kind, mod) in zip(src, dst, strict=True):
                if la.kind != kind:
                    raise ValueError(f"layer kind mismatch: .dat {la.kind}, model {kind}")
                if kind == "affine":
                    pairs = [(mod.gamma, la.params["gamma"]), (mod.beta, la.params["beta"])]
                elif kind == "con":
                    geom = (tuple(la.attrs["kernel"]), tuple(la.attrs["stride"]), tuple(la.attrs["padding"]))
                    if geom != (mod.kernel_size, mod.stride, mod.padding):
                        raise ValueError(f"conv geometry mismatch: .dat {geom}, model {mod}")
                    pairs = [(mod.weight, la.params["weight"]), (mod.bias, la.params["bias"])]
                else:  # fc without bias
                    if "bias" in la.params:
                        raise ValueError("dlib face model fc layer unexpectedly has a bias")
                    pairs = [(mod.weight, la.params["weight"])]
                for p, a in pairs:
                    if tuple(p.shape) != a.shape:
                        raise ValueError(f"shape mismatch for {kind}: model {tuple(p.shape)}, .dat {a.shape}")
                    p.copy_(torch.from_numpy(a))
            self.mean_rgb.copy_(torch.tensor(net.input.attrs["avg_rgb"], dtype=torch.float32))
        return self

    def _dlib_param_modules(self) -> Iterator[tuple[str, nn.Module]]:
        """Parameterised layers in dlib's (input to output) order, with their dlib kind."""
        yield "con", self.stem.conv
        yield "affine", self.stem.affine
        for level in LEVELS[1:]:
            for blk in self.get_submodule(level):
                yield from (("con", blk.conv1), ("affine", blk.affine1))
                yield from (("con", blk.conv2), ("affine", blk.affine2))
        yield "fc", self.head.fc

    def _conv_affine_pairs(self) -> Iterator[tuple[nn.Conv2d, nn.Module, str]]:
        """(conv, owner, attribute name of the affine that directly follows the conv)."""
        yield self.stem.conv, self.stem, "affine"
        for level in LEVELS[1:]:
            for blk in self.get_submodule(level):
                yield blk.conv1, blk, "affine1"
                yield blk.conv2, blk, "affine2"

    def fused(self, channels_last: bool = True) -> DlibResNet:
        """Inference copy with every affine folded into the conv before it, optionally channels-last.

        ``gamma * (W x + b) + beta == (gamma W) x + (gamma b + beta)``: same descriptors up to float rounding
        (~1e-6) and about 1.3-1.6x faster on CPU. The copy has no affine parameters, so ``train_affine`` and
        :meth:`load_dat` do not apply to it; the original model is left untouched.
        """
        if self.is_fused:
            return self
        f = copy.deepcopy(self)
        with torch.no_grad():
            for conv, owner, attr in f._conv_affine_pairs():
                af = getattr(owner, attr)
                conv.weight.mul_(af.gamma.view(-1, 1, 1, 1))
                conv.bias.mul_(af.gamma).add_(af.beta)
                setattr(owner, attr, nn.Identity())
        f.is_fused = True
        if channels_last:
            f = f.to(memory_format=torch.channels_last)
        return f

    # ------------------------------------------------------------------ inference
    def preprocess(self, chips: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """150x150 uint8 RGB chips -> normalised input tensor on this model's device (and memory format)."""
        x = preprocess_chips(chips, self.mean_rgb.cpu().numpy(), device=self.mean_rgb.device, size=150)
        if self.stem.conv.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def stages(self) -> list[tuple[str, nn.Module]]:
        """``[(name, module)]`` for stem, level1..level5 and head, input to output."""
        return [(n, self.get_submodule(n)) for n in STAGES]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised N,3,150,150 input -> N,128 raw dlib descriptors."""
        for _, mod in self.stages():
            x = mod(x)
        return x

    def forward_features(self, x: torch.Tensor, until: str = "level5") -> torch.Tensor:
        """Run the stages from ``stem`` up to and including ``until`` (a name in :data:`LEVELS`).

        Output shapes for 150 px input: stem 32x35x35, level1 32x35x35, level2 64x17x17, level3 128x8x8,
        level4 256x4x4, level5 256x2x2. Cache these for frozen lower levels and train the rest with
        :meth:`forward_from`.
        """
        end = _stage_index(until, LEVELS)
        for _, mod in self.stages()[: end + 1]:
            x = mod(x)
        return x

    def forward_from(self, features: torch.Tensor, start: str = "level1") -> torch.Tensor:
        """Run stages from ``start`` (a name in :data:`STAGES`) to the end, returning N,128 descriptors.

        ``forward_from(forward_features(x, until=L), start=<stage after L>)`` equals ``forward(x)``.
        """
        begin = _stage_index(start, STAGES)
        for _, mod in self.stages()[begin:]:
            features = mod(features)
        return features

    # ------------------------------------------------------------------ fine-tuning
    def freeze_until(self, level: str | None, train_affine: bool = True) -> DlibResNet:
        """Freeze ``stem`` .. ``level`` (inclusive) and unfreeze everything after it.

        ``level=None`` unfreezes all stages; ``level="head"`` freezes everything. In the trainable stages
        the affine (frozen batch-norm) parameters train only when ``train_affine`` is true. There are no
        batch statistics in this net, so ``train()``/``eval()`` do not change its outputs.
        """
        last_frozen = -1 if level is None else _stage_index(level, STAGES)
        for i, (_, mod) in enumerate(self.stages()):
            for sub in mod.modules():
                trainable = i > last_frozen and (train_affine or not isinstance(sub, Affine))
                for p in sub.parameters(recurse=False):
                    p.requires_grad_(trainable)
        return self

    def trainable_stages(self) -> list[str]:
        """Names of the stages that have at least one parameter with ``requires_grad``."""
        return [n for n, m in self.stages() if any(p.requires_grad for p in m.parameters())]


def _stage_index(name: str, allowed: tuple[str, ...]) -> int:
    try:
        return allowed.index(name)
    except ValueError:
        raise ValueError(f"unknown stage {name!r}; expected one of {', '.join(allowed)}") from None


class DlibFeatureOutputs(nn.Module):
    """dlib's ResNet returning the raw descriptor and the spatial mean of every level, for one ONNX graph that
    serves both the identity embedding and the PerFace metric's pooled features (one run per chip)."""

    def __init__(self, net: DlibResNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pooled = []
        for name in LEVELS:
            x = self.net.get_submodule(name)(x)
            pooled.append(x.mean(dim=(2, 3)))
        return (self.net.head(x), *pooled)
