"""Tests for the ArcFace iresnet backbone (random weights: shapes, checkpoint compatibility, round trip)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from perface.backbones import embed_chips, load_backbone
from perface.backbones.iresnet import IRESNET_LAYERS, IResNet, iresnet, load_iresnet_weights


@pytest.fixture(scope="module")
def r50():
    torch.manual_seed(0)
    return load_backbone("iresnet50", pretrained=False)


def test_iresnet50_shapes_and_keys(r50) -> None:
    assert r50.input_size == 112 and r50.embedding_dim == 512
    x = torch.randn(2, 3, 112, 112)
    with torch.inference_mode():
        y = r50(x)
    assert y.shape == (2, 512) and torch.isfinite(y).all()
    sd = r50.state_dict()
    # arcface_torch backbone.pth key names
    for k in ("conv1.weight", "bn1.running_var", "prelu.weight", "layer1.0.bn1.weight",
              "layer1.0.prelu.weight", "layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_mean",
              "layer3.13.bn3.bias", "layer4.2.conv2.weight", "bn2.weight", "fc.weight", "fc.bias",
              "features.running_mean"):
        assert k in sd, k
    assert "layer3.14.bn1.weight" not in sd
    assert sd["fc.weight"].shape == (512, 512 * 7 * 7)
    assert sum(p.numel() for p in r50.parameters()) == pytest.approx(43.6e6, rel=0.01)
    assert not r50.features.weight.requires_grad


def test_iresnet_round_trip(r50, tmp_path: Path) -> None:
    path = tmp_path / "backbone.pth"
    torch.save({f"module.{k}": v for k, v in r50.state_dict().items()}, path)  # DDP-style prefix tolerated
    loaded = load_backbone("iresnet50", weights=path)
    chips = np.random.default_rng(0).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    np.testing.assert_array_equal(embed_chips(loaded, chips), embed_chips(r50, chips))
    with pytest.raises(ValueError, match="does not match"):
        load_iresnet_weights(iresnet("iresnet34"), path)


def test_iresnet_fp16_flag_runs() -> None:
    torch.manual_seed(0)
    m = IResNet((1, 1, 1, 1)).eval()  # tiny variant: the flag, not the depth, is under test
    x = torch.randn(1, 3, 112, 112)
    with torch.inference_mode():
        ref = m(x)
        m.fp16 = True
        y = m(x)
    assert y.dtype == torch.float32 and y.shape == ref.shape
    assert torch.nn.functional.cosine_similarity(y, ref).item() > 0.95
    assert set(IRESNET_LAYERS) == {"iresnet18", "iresnet34", "iresnet50", "iresnet100"}
