"""Building backbones by name (:func:`load_backbone`) and embedding chips with them in batches (PyTorch)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .dlib_resnet import DlibResNet, l2_normalize
from .iresnet import IRESNET_LAYERS, iresnet, load_iresnet_weights

#: Names accepted by :func:`load_backbone`.
BACKBONES: tuple[str, ...] = ("dlib-resnet", *IRESNET_LAYERS, "mobilefacenet", "faceres", "mobileface")


def load_backbone(
    name: str = "dlib-resnet",
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
) -> nn.Module:
    """Build a backbone in eval mode on ``device``.

    * ``"dlib-resnet"``: dlib's 128-d face-recognition ResNet. ``weights=None`` reads the shipped
      ``dlib_face_recognition_resnet_model_v1.dat``; a ``.dat`` path reads that file; a ``.pt``/``.pth``/
      ``.safetensors`` path loads a (fine-tuned) :class:`DlibResNet` state dict. ``pretrained=False`` with
      no weights gives dlib's architecture with PyTorch's default random init.
    * ``"iresnet18"``/``"iresnet34"``/``"iresnet50"``/``"iresnet100"``: ArcFace backbones (512-d, 112 px).
      They need ``weights=PATH`` to an insightface ``backbone.pth`` (see :mod:`perface.backbones.iresnet`
      for where to get one); ``pretrained=False`` gives random init (for tests or training from scratch).
    * ``"mobilefacenet"``/``"faceres"``/``"mobileface"``: the shipped TF.js recognizers as staged backbones
      (:class:`perface.backbones.tfjs_backbone.TfjsBackbone`; 112, 224 and 112 px input).
    """
    key = name.lower().replace("_", "-")
    if key in ("dlib-resnet", "dlib"):
        model: nn.Module = _load_dlib(weights, pretrained)
    elif key in IRESNET_LAYERS:
        model = iresnet(key)
        if weights is not None:
            load_iresnet_weights(model, weights)
        elif pretrained:
            raise ValueError(
                f"{key} has no bundled weights: pass weights=PATH to an arcface_torch backbone.pth "
                "(insightface model zoo, e.g. ms1mv3_arcface_r50_fp16/backbone.pth), "
                "or pretrained=False for random init"
            )
    elif key in ("mobilefacenet", "faceres", "mobileface"):
        from .tfjs_backbone import TfjsBackbone

        if weights is not None or not pretrained:
            raise ValueError(f"{key} ships its weights; weights= and pretrained=False are not supported for it")
        model = TfjsBackbone(key)
    else:
        raise ValueError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
    return model.to(device).eval()


def _load_dlib(weights: str | Path | None, pretrained: bool) -> DlibResNet:
    if weights is None:
        return DlibResNet.from_dat() if pretrained else DlibResNet()
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"dlib-resnet weights not found: {path}")
    if path.suffix == ".dat":
        return DlibResNet.from_dat(path)
    model = DlibResNet()
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
            sd = sd["state_dict"]
    model.load_state_dict(sd)
    return model


def embed_chips(
    model: nn.Module,
    chips: np.ndarray | Sequence[np.ndarray],
    batch_size: int = 64,
    normalize: bool = False,
    autocast_dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Embed aligned uint8 RGB chips with ``model`` in batches; returns float32 (N, embedding_dim).

    ``chips`` is an N,H,W,3 array or a list of H,W,3 arrays of the model's input size (150 for dlib-resnet,
    112 for iresnet). For dlib-resnet the result equals ``compute_face_descriptor`` (raw, not unit length);
    ``normalize=True`` L2-normalises rows. ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs under autocast.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    preprocess = getattr(model, "preprocess", None)
    if preprocess is None:
        raise TypeError("model has no preprocess(); use a backbone from load_backbone()")
    if isinstance(chips, np.ndarray) and chips.ndim == 3:
        chips = chips[None]
    n = len(chips)
    if n == 0:
        return np.zeros((0, int(getattr(model, "embedding_dim", 0))), dtype=np.float32)
    device = next(model.parameters()).device
    out = []
    was_training = model.training
    model.eval()
    try:
        amp_dtype = autocast_dtype or torch.bfloat16
        amp = torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=autocast_dtype is not None)
        with torch.inference_mode(), amp:
            for i in range(0, n, batch_size):
                y = model(preprocess(chips[i : i + batch_size])).float()
                if normalize:
                    y = l2_normalize(y)
                out.append(y.cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out).astype(np.float32, copy=False)
