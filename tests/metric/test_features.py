"""perface.metric.features: one extraction per image set serves later banks over other mixes of those images."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

import perface.metric.features as F
from perface.metric.model import ModelConfig, PerFaceModel

CHIPS = Path(__file__).parents[1] / "data" / "chips"


def test_banks_are_gathered_from_earlier_caches_and_only_new_images_are_extracted(tmp_path, monkeypatch):
    model = PerFaceModel(ModelConfig(views=(0.25,), flip_average=False, color_grid=0))
    faces = sorted(CHIPS.glob("omi_*.jpg"))[:5]
    for f in faces:
        shutil.copy(f, tmp_path / f.name)
    paths = [str(tmp_path / f.name) for f in faces]
    cache = tmp_path / "cache"
    first = F.build_feature_bank(model, paths[:3], cache_dir=cache, progress=False)
    F.build_feature_bank(model, paths[3:4], cache_dir=cache, progress=False)
    seen: list[str] = []
    real = F._largest_face_views
    monkeypatch.setattr(F, "_largest_face_views", lambda m, p, d: seen.append(p) or real(m, p, d))
    # Another head on the same features, images from both banks plus one new one, in a new order.
    other = PerFaceModel(ModelConfig(views=(0.25,), flip_average=False, color_grid=0, hidden=16, embed_dim=8))
    want = [paths[4], paths[1], paths[3], paths[0]]
    bank = F.build_feature_bank(other, want, cache_dir=cache, progress=False)
    assert seen == [paths[4]]  # only the image no cached bank holds was extracted
    assert bank.paths == want
    assert np.array_equal(bank.pooled[1], first.pooled[1]) and np.array_equal(bank.identity[3], first.identity[0])
    seen.clear()
    again = F.build_feature_bank(other, [paths[2], paths[4]], cache_dir=cache, progress=False)
    assert seen == [] and again.paths == [paths[2], paths[4]]
    assert np.array_equal(again.pooled[1], bank.pooled[0])


def test_a_changed_image_is_extracted_again(tmp_path, monkeypatch):
    model = PerFaceModel(ModelConfig(views=(0.25,), flip_average=False, color_grid=0))
    src = sorted(CHIPS.glob("omi_*.jpg"))[:2]
    paths = []
    for f in src:
        shutil.copy(f, tmp_path / f.name)
        paths.append(str(tmp_path / f.name))
    cache = tmp_path / "cache"
    F.build_feature_bank(model, paths, cache_dir=cache, progress=False)
    shutil.copy(src[1], paths[0])  # same name, other content (and size)
    seen: list[str] = []
    real = F._largest_face_views
    monkeypatch.setattr(F, "_largest_face_views", lambda m, p, d: seen.append(p) or real(m, p, d))
    bank = F.build_feature_bank(model, paths[:1], cache_dir=cache, progress=False)
    assert seen == [paths[0]]
    assert np.allclose(bank.identity[0], F.build_feature_bank(model, paths[1:], cache_dir=cache,
                                                               progress=False).identity[0], atol=1e-5)


def test_an_image_copied_anew_with_the_same_bytes_keeps_its_cache(tmp_path, monkeypatch):
    model = PerFaceModel(ModelConfig(views=(0.25,), flip_average=False, color_grid=0))
    src = sorted(CHIPS.glob("omi_*.jpg"))[:2]
    paths = [str(tmp_path / f.name) for f in src]
    for f, p in zip(src, paths, strict=True):
        shutil.copy(f, p)
    cache = tmp_path / "cache"
    first = F.build_feature_bank(model, paths, cache_dir=cache, progress=False)
    for p in paths:  # a data folder copied again: same files, new modification times
        os.utime(p, (1_000_000_000, 1_000_000_000))
    F._DIGESTS.clear()
    seen: list[str] = []
    real = F._largest_face_views
    monkeypatch.setattr(F, "_largest_face_views", lambda m, p, d: seen.append(p) or real(m, p, d))
    again = F.build_feature_bank(model, paths[::-1], cache_dir=cache, progress=False)
    assert seen == []
    assert np.array_equal(again.pooled[0], first.pooled[1])


def test_a_second_backbone_follows_the_first_in_the_bank_and_equals_the_model(tmp_path):
    import torch

    torch.manual_seed(0)
    m = PerFaceModel(ModelConfig(embed_dim=8, hidden=16, second_backbone="faceres", second_levels=("head",),
                                 second_views=(0.25,), second_flip=False))
    paths = [str(CHIPS / "omi_1.jpg"), str(CHIPS / "astronaut.jpg")]
    bank = F.build_feature_bank(m, paths, cache_dir=tmp_path, progress=False)
    assert bank.pooled.shape == (2, 2, m.feature_dim)
    second = bank.pooled[:, :, -m.second_view_dim:]
    np.testing.assert_array_equal(second[:, 0], second[:, 1])  # no mirror run: the mirror row reuses the plain one
    with torch.no_grad():
        want = m.view_features(m.preprocess_views([[c] for c in m.align(*_largest(paths[0]))]))
    np.testing.assert_allclose(bank.pooled[0, 0], want[0].numpy(), atol=1e-4)


def _largest(path: str):
    from perface.face.detect import REFERENCE_DETECT, detect
    from perface.face.io import read_image

    image = read_image(path)
    return image, max(detect(image, REFERENCE_DETECT), key=lambda f: f.width * f.height)
