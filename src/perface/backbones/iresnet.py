"""ArcFace ``iresnet`` backbones (insightface ``arcface_torch``), state-dict compatible with ``backbone.pth``.

Why: ArcFace embeddings are a stronger identity reference than dlib's; PerFace can use them when the user
supplies weights. The module names and the forward pass follow insightface's
``recognition/arcface_torch/backbones/iresnet.py`` so its checkpoints load with ``strict`` key matching.

Weights cannot be downloaded by PerFace (offline, and the models carry their own non-commercial terms).
Get them yourself from the insightface model zoo, e.g. the ``arcface_torch`` release checkpoints
(``ms1mv3_arcface_r50_fp16/backbone.pth``, ``glint360k_cosface_r50_fp16_0.1/backbone.pth``; see
https://github.com/deepinsight/insightface/tree/master/recognition/arcface_torch, "Model Zoo") and pass the
path: ``load_backbone("iresnet50", weights="backbone.pth")``. Check the licence of the checkpoint you use
(insightface's pretrained models are for non-commercial research only).

Input: 112x112 RGB face crops aligned with insightface's 5-point similarity transform (``norm_crop``),
normalised as ``(pixel / 255 - 0.5) / 0.5``; output: N x 512 embeddings (not normalised; compare with cosine).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .dlib_resnet import _stack_chips

__all__ = ["IBasicBlock", "IResNet", "IRESNET_LAYERS", "iresnet", "load_iresnet_weights"]

#: Blocks per stage for the arcface_torch variants.
IRESNET_LAYERS: dict[str, tuple[int, int, int, int]] = {
    "iresnet18": (2, 2, 2, 2),
    "iresnet34": (3, 4, 6, 3),
    "iresnet50": (3, 4, 14, 3),
    "iresnet100": (3, 13, 30, 3),
}


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Improved residual block: bn1 -> conv1 -> bn2 -> prelu -> conv2(stride) -> bn3, plus shortcut."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = self.downsample(x) if self.downsample is not None else x
        return out + identity


class IResNet(nn.Module):
    """arcface_torch ``IResNet``: 112x112 input, 4 stride-2 stages, BN -> flatten -> fc 512 -> BatchNorm1d.

    ``fp16`` runs the convolutional trunk under autocast (float16 on CUDA, bfloat16 elsewhere) like the
    original's ``torch.cuda.amp.autocast(self.fp16)``; the fc and feature BN always run in float32.
    """

    fc_scale = 7 * 7
    input_size: int = 112

    def __init__(self, layers: Sequence[int], dropout: float = 0.0, num_features: int = 512,
                 fp16: bool = False, name: str = "iresnet") -> None:
        super().__init__()
        self.fp16 = fp16
        self.name = name
        self.embedding_dim = num_features
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes, eps=1e-05)
        self.prelu = nn.PReLU(self.inplanes)
        self.layer1 = self._make_layer(64, layers[0], stride=2)
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.bn2 = nn.BatchNorm2d(512 * IBasicBlock.expansion, eps=1e-05)
        self.dropout = nn.Dropout(p=dropout, inplace=True)
        self.fc = nn.Linear(512 * IBasicBlock.expansion * self.fc_scale, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-05)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        out_planes = planes * IBasicBlock.expansion
        if stride != 1 or self.inplanes != out_planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, out_planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes, eps=1e-05),
            )
        layers = [IBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * IBasicBlock.expansion
        layers += [IBasicBlock(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised N,3,112,112 input -> N,512 embeddings."""
        amp_dtype = torch.float16 if x.device.type == "cuda" else torch.bfloat16
        with torch.autocast(device_type=x.device.type, dtype=amp_dtype, enabled=self.fp16):
            x = self.prelu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            x = torch.flatten(self.bn2(x), 1)
            x = self.dropout(x)
        x = self.fc(x.float() if self.fp16 else x)
        return self.features(x)

    def preprocess(self, chips: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """112x112 uint8 RGB crops -> ``(x / 255 - 0.5) / 0.5`` N,3,112,112 tensor on the model's device."""
        arr = _stack_chips(chips, self.input_size)
        device = self.conv1.weight.device
        x = torch.from_numpy(arr).to(device).permute(0, 3, 1, 2).float()
        return ((x / 255.0 - 0.5) / 0.5).contiguous()


def iresnet(name: str = "iresnet50", **kwargs: object) -> IResNet:
    """Randomly initialised ``iresnet18/34/50/100`` (``kwargs`` go to :class:`IResNet`)."""
    if name not in IRESNET_LAYERS:
        raise ValueError(f"unknown iresnet {name!r}; choose from {', '.join(IRESNET_LAYERS)}")
    return IResNet(IRESNET_LAYERS[name], name=name, **kwargs)  # type: ignore[arg-type]


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "backbone"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return {k.removeprefix("module.").removeprefix("backbone."): v for k, v in obj.items()}


def load_iresnet_weights(model: IResNet, path: str | Path) -> IResNet:
    """Load an arcface_torch ``backbone.pth`` (or ``.safetensors``) state dict into ``model``.

    Keys must match exactly, except ``num_batches_tracked`` buffers, which older checkpoints may lack.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"iresnet weights not found: {path}")
    sd = _read_state_dict(path)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match {model.name}: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    return model
