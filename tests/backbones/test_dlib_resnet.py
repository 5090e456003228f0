"""Tests for the PyTorch port of dlib's face-recognition ResNet: equivalence with dlib, fine-tuning hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perface.backbones import LEVELS, STAGES, DlibResNet, preprocess_chips
from perface.backbones.dlib_resnet import Affine, _zero_pad_add


def test_matches_dlib_compute_face_descriptor(dlib_model: DlibResNet, chips: np.ndarray) -> None:
    dlib = pytest.importorskip("dlib")
    from perface.backbones.dlib_dat import default_dat_path

    fr = dlib.face_recognition_model_v1(str(default_dat_path()))
    ref = np.array([np.asarray(v) for v in fr.compute_face_descriptor(list(chips))])
    with torch.inference_mode():
        got = dlib_model(dlib_model.preprocess(chips)).numpy().astype(np.float64)
    assert got.shape == ref.shape == (len(chips), 128)
    assert len(chips) >= 21
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.9999
    assert np.abs(got - ref).max() <= 1e-3


def test_preprocess_matches_dlib_input_layer(chips: np.ndarray) -> None:
    x = preprocess_chips(chips[:2])
    assert x.shape == (2, 3, 150, 150) and x.dtype == torch.float32
    r, g, b = (chips[1, 10, 20].astype(np.float32) - np.array([122.782, 117.001, 104.298], np.float32)) / 256
    np.testing.assert_array_equal(x[1, :, 10, 20].numpy(), np.array([r, g, b], np.float32))
    with pytest.raises(ValueError, match="150x150"):
        preprocess_chips(np.zeros((1, 112, 112, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        preprocess_chips(np.zeros((1, 150, 150, 3), np.float32))


def test_feature_shapes_and_split_consistency(dlib_model: DlibResNet, chips: np.ndarray) -> None:
    x = dlib_model.preprocess(chips[:1])
    expected = {"stem": (32, 35, 35), "level1": (32, 35, 35), "level2": (64, 17, 17), "level3": (128, 8, 8),
                "level4": (256, 4, 4), "level5": (256, 2, 2)}
    with torch.inference_mode():
        full = dlib_model(x)
        f = x
        for name, mod in dlib_model.stages()[:-1]:
            f = mod(f)
            assert tuple(f.shape[1:]) == expected[name]
        for level in ("stem", "level3", "level5"):
            feats = dlib_model.forward_features(x, until=level)
            assert tuple(feats.shape[1:]) == expected[level]
            y = dlib_model.forward_from(feats, start=STAGES[LEVELS.index(level) + 1])
            torch.testing.assert_close(y, full, rtol=0, atol=1e-6)
        torch.testing.assert_close(dlib_model.forward_from(x, start="stem"), full, rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown stage"):
        dlib_model.forward_features(x, until="level9")


def test_fused_inference_copy(dlib_model: DlibResNet, chips: np.ndarray) -> None:
    f = dlib_model.fused()
    assert f is not dlib_model and f.is_fused and not dlib_model.is_fused
    assert not any(isinstance(m, Affine) for m in f.modules())
    x = f.preprocess(chips[:3])
    assert x.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        torch.testing.assert_close(f(x), dlib_model(dlib_model.preprocess(chips[:3])), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="unfused"):
        f.load_dat()


def test_zero_pad_add_like_dlib_add_prev() -> None:
    a = torch.ones(1, 2, 3, 3)
    b = torch.full((1, 4, 4, 4), 2.0)
    s = _zero_pad_add(a, b)
    assert s.shape == (1, 4, 4, 4)
    assert s[0, :2, :3, :3].eq(3).all() and s[0, 2:].eq(2).all() and s[0, :2, 3].eq(2).all()


def test_freeze_until_and_affine_flag() -> None:
    m = DlibResNet()
    m.freeze_until("level2")
    assert m.trainable_stages() == ["level3", "level4", "level5", "head"]
    assert all(p.requires_grad for p in m.level3.parameters())
    assert not any(p.requires_grad for p in m.stem.parameters())
    m.freeze_until("level3", train_affine=False)
    affines = [mod for mod in m.level4.modules() if isinstance(mod, Affine)]
    assert affines and not any(p.requires_grad for a in affines for p in a.parameters())
    assert m.level4[0].conv1.weight.requires_grad and m.head.fc.weight.requires_grad
    m.freeze_until("head")
    assert m.trainable_stages() == []
    m.freeze_until(None)
    assert all(p.requires_grad for p in m.parameters())


def test_train_upper_levels_on_cached_features(chips: np.ndarray) -> None:
    m = DlibResNet.from_dat().freeze_until("level3")
    x = m.preprocess(chips[:4])
    with torch.no_grad():
        cached = m.forward_features(x, until="level3")  # computed once, could live on CPU / disk
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    before = m.level2[0].conv1.weight.clone()
    y = m.forward_from(cached, start="level4")
    loss = (y[0] - y[1]).pow(2).sum()
    loss.backward()
    assert m.level3[0].conv1.weight.grad is None
    assert m.level4[0].conv1.weight.grad is not None and m.head.fc.weight.grad is not None
    opt.step()
    assert torch.equal(before, m.level2[0].conv1.weight)
