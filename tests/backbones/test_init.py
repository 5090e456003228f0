"""Tests for load_backbone / embed_chips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from perface.backbones import DlibResNet, embed_chips, load_backbone


def test_embed_chips_batching_and_inputs(dlib_model: DlibResNet, chips: np.ndarray) -> None:
    sub = chips[:5]
    e64 = embed_chips(dlib_model, sub)
    e2 = embed_chips(dlib_model, list(sub), batch_size=2)
    assert e64.shape == (5, 128) and e64.dtype == np.float32
    np.testing.assert_allclose(e2, e64, rtol=0, atol=1e-5)
    one = embed_chips(dlib_model, sub[0])
    np.testing.assert_allclose(one[0], e64[0], rtol=0, atol=1e-5)
    unit = embed_chips(dlib_model, sub, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    assert embed_chips(dlib_model, []).shape == (0, 128)
    with pytest.raises(ValueError):
        embed_chips(dlib_model, np.zeros((1, 112, 112, 3), np.uint8))


def test_embed_chips_bf16_autocast_close(dlib_model: DlibResNet, chips: np.ndarray) -> None:
    ref = embed_chips(dlib_model, chips[:3])
    bf = embed_chips(dlib_model, chips[:3], autocast_dtype=torch.bfloat16)
    cos = (ref * bf).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(bf, axis=1)
    assert cos.min() > 0.99


def test_load_backbone_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown backbone"):
        load_backbone("facenet")
    with pytest.raises(ValueError, match="backbone.pth"):
        load_backbone("iresnet50")
    with pytest.raises(FileNotFoundError):
        load_backbone("dlib-resnet", weights=tmp_path / "missing.dat")


def test_finetuned_dlib_state_dict_round_trip(
    dlib_model: DlibResNet, chips: np.ndarray, tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    m = DlibResNet.from_dat()
    with torch.no_grad():
        m.head.fc.weight.mul_(2.0)
    save_file(m.state_dict(), str(tmp_path / "ft.safetensors"))
    torch.save(m.state_dict(), tmp_path / "ft.pt")
    ref = embed_chips(dlib_model, chips[:2])
    for name in ("ft.safetensors", "ft.pt"):
        loaded = load_backbone("dlib-resnet", weights=tmp_path / name)
        np.testing.assert_allclose(embed_chips(loaded, chips[:2]), 2 * ref, rtol=1e-5, atol=1e-6)
    rand = load_backbone("dlib", pretrained=False)
    assert not torch.equal(rand.head.fc.weight, dlib_model.head.fc.weight)
