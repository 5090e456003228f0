"""perface.metric.model: embeddings are unit vectors, similarity is symmetric, save/load round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from perface.face.io import InputError
from perface.metric.model import ModelConfig, PerFaceModel, load

CHIPS = Path(__file__).parents[1] / "data" / "chips"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return PerFaceModel(ModelConfig(embed_dim=16, hidden=32))


def test_embed_units_and_symmetry(model, astronaut):
    e = model.embed([astronaut, str(CHIPS / "omi_1.jpg")])
    assert e.shape == (2, 16)
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    s = model.similarity(astronaut, str(CHIPS / "omi_1.jpg"))
    assert s == pytest.approx(model.similarity(str(CHIPS / "omi_1.jpg"), astronaut), abs=1e-5)
    assert model.distance(astronaut, astronaut) == pytest.approx(0, abs=1e-5)


def test_flip_average_makes_mirror_images_equal(model, astronaut):
    e = model.embed([astronaut, np.ascontiguousarray(astronaut[:, ::-1])])
    assert float(e[0] @ e[1]) > 0.99


def test_no_face_is_an_input_error(model):
    with pytest.raises(InputError, match="no face"):
        model.embed([np.full((120, 120, 3), 127, np.uint8)])


def test_save_load_round_trip(model, tmp_path, astronaut):
    d = model.save(tmp_path / "m", metadata={"trained_on": "test"})
    assert json.loads((d / "config.json").read_text())["model"]["embed_dim"] == 16
    m2 = load(d)
    assert m2.model_id.startswith("perface:")
    assert np.allclose(model.embed([astronaut]), m2.embed([astronaut]), atol=1e-5)
    with pytest.raises(InputError, match="already exists"):
        model.save(d)


def test_only_head_weights_are_saved_for_a_frozen_backbone(model, tmp_path):
    from safetensors.torch import load_file

    d = model.save(tmp_path / "m2")
    assert all(k.startswith("head.") for k in load_file(str(d / "model.safetensors")))


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="not a PerFace model"):
        load(tmp_path)
    (tmp_path / "config.json").write_text("{broken")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(InputError, match="invalid JSON"):
        load(tmp_path)


def test_default_model_loads_offline(astronaut):
    m = load("default")
    e = m.embed([astronaut])
    assert e.shape == (1, m.config.embedding_dim) and m.config.attribute_outputs > 0
    assert abs(float(np.linalg.norm(e[0])) - 1.0) < 1e-5
    assert "rating-derived" in m.metadata["trained_on"]


def test_unknown_config_key():
    from perface.face.io import PerFaceError

    with pytest.raises(PerFaceError, match="unknown model config"):
        ModelConfig.from_dict({"embed_dims": 3})


def test_identity_residual_head_starts_as_the_identity_metric(astronaut, tmp_path):
    torch.manual_seed(0)
    m = PerFaceModel(ModelConfig(views=(0.25,), hidden=16, embed_dim=8, flip_average=False, identity_dim=128))
    faces = [astronaut, str(CHIPS / "omi_1.jpg")]
    assert float(m.head.identity_mix.detach()) == pytest.approx(0.1)  # starts near the identity metric
    with torch.no_grad():
        m.head.identity_mix.zero_()  # at 0 it IS the identity metric
    e = m.embed(faces)
    assert e.shape == (2, 136) and np.abs(e[:, 128:]).max() == 0
    feats = m.view_features([m.features.backbone.preprocess(m._to_views(faces)[0])])
    ident = feats[:, -128:].detach().numpy()
    ident /= np.linalg.norm(ident, axis=1, keepdims=True)
    assert float(e[0] @ e[1]) == pytest.approx(float(ident[0] @ ident[1]), abs=1e-5)
    assert load(m.save(tmp_path / "m")).config.identity_dim == 128
    with pytest.raises(Exception, match="head"):
        PerFaceModel(ModelConfig(views=(0.25,), feature_levels=("level4",), identity_dim=128))


@pytest.fixture(scope="module")
def two_backbones():
    torch.manual_seed(0)
    return PerFaceModel(ModelConfig(embed_dim=16, hidden=32, second_backbone="faceres",
                                    second_levels=("stage5", "head")))


def test_second_backbone_features_follow_the_first(two_backbones, astronaut):
    from perface.face.detect import detect

    m = two_backbones
    face = detect(astronaut)[0]
    chips = m.align(astronaut, face)
    assert [c.shape[0] for c in chips] == [150, 150, 224, 224]  # dlib's chips, then FaceRes's, per view
    with torch.no_grad():
        feats = m.view_features(m.preprocess_views([[c] for c in chips]))
        second = m.second(m.second.backbone.preprocess(chips[2][None]))
    assert feats.shape[1] == m.feature_dim == 2 * (m.first_view_dim + m.second_view_dim)
    torch.testing.assert_close(feats[:, 2 * m.first_view_dim : 2 * m.first_view_dim + m.second_view_dim], second)
    assert torch.linalg.norm(second[:, -m.second.backbone.embedding_dim:]).item() == pytest.approx(1.0, abs=1e-5)


def test_second_backbone_round_trip_saves_only_the_head(two_backbones, tmp_path, astronaut):
    from safetensors.torch import load_file

    d = two_backbones.save(tmp_path / "two")
    assert all(k.startswith("head.") for k in load_file(str(d / "model.safetensors")))
    again = load(d)
    assert again.config.second_levels == ("stage5", "head")
    np.testing.assert_allclose(two_backbones.embed([astronaut]), again.embed([astronaut]), atol=1e-5)


def test_second_backbone_needs_levels_and_a_frozen_first():
    from perface.face.io import PerFaceError

    with pytest.raises(PerFaceError, match="second_levels"):
        PerFaceModel(ModelConfig(second_backbone="faceres"))
    with pytest.raises(PerFaceError, match="frozen first backbone"):
        PerFaceModel(ModelConfig(second_backbone="faceres", second_levels=("head",), train_from="level5"))


def test_second_backbone_without_mirror_images_gives_mirrors_its_plain_features(astronaut):
    from perface.face.detect import detect
    from perface.face.io import PerFaceError

    torch.manual_seed(0)
    m = PerFaceModel(ModelConfig(embed_dim=16, hidden=32, second_backbone="faceres", second_levels=("head",),
                                 second_views=(0.25,), second_flip=False))
    assert m.feature_dim == 2 * m.first_view_dim + m.second_view_dim
    chips = m.align(astronaut, detect(astronaut)[0])
    assert [c.shape[0] for c in chips] == [150, 150, 224]
    plain = m.preprocess_views([[c] for c in chips])
    with torch.no_grad():
        a = m.view_features(plain)
        b = m.view_features([p.flip(3) if i < 2 else p for i, p in enumerate(plain)])
    torch.testing.assert_close(a[:, -m.second_view_dim:], b[:, -m.second_view_dim:])
    with pytest.raises(PerFaceError, match="second_views"):
        PerFaceModel(ModelConfig(second_backbone="faceres", second_levels=("head",), second_views=(0.4,)))


def test_second_backbone_on_the_box_sees_its_recognizers_crop(astronaut):
    """``second_crop`` "box": FaceRes's chip is the FaceRes recognizer's own crop (box + 10%), not dlib's chip."""
    from perface.face.detect import detect
    from perface.face.io import PerFaceError
    from perface.face.recognizers import get_recognizer

    m = PerFaceModel(ModelConfig(embed_dim=16, hidden=32, second_backbone="faceres", second_levels=("head",),
                                 second_views=(0.1,), second_flip=False, second_crop="box"))
    face = detect(astronaut)[0]
    chips = m.align(astronaut, face)
    assert [c.shape[0] for c in chips] == [150, 150, 224]
    np.testing.assert_array_equal(chips[2], get_recognizer("faceres").crop(astronaut, face))
    assert not np.array_equal(chips[2], PerFaceModel(ModelConfig(
        second_backbone="faceres", second_levels=("head",), second_views=(0.25,), second_flip=False)).align(
        astronaut, face)[2])
    with pytest.raises(PerFaceError, match="second_crop"):
        PerFaceModel(ModelConfig(second_backbone="faceres", second_levels=("head",), second_crop="boxes"))
    with pytest.raises(PerFaceError, match="box margins"):
        PerFaceModel(ModelConfig(second_backbone="faceres", second_levels=("head",), second_crop="box"))


def test_second_identity_join_mixes_the_cosines(astronaut, tmp_path):
    """``second_identity_weight`` w: cos = (cos_rest + w^2 cos_identity) / (1 + w^2), the identity being FaceRes's
    output centred on the training faces' mean; the centre is saved with the head."""
    from perface.face.io import PerFaceError

    torch.manual_seed(0)
    cfg = dict(embed_dim=16, hidden=32, second_backbone="faceres", second_levels=("stage5", "head"),
               second_views=(0.25,), second_flip=False, attribute_outputs=3)
    m = PerFaceModel(ModelConfig(**cfg, second_identity_weight=0.5, second_identity_dim=1024)).eval()
    assert m.config.embedding_dim == 16 + 3 + 1 + 1024
    start, end, w = m.head.joined
    assert (end, w) == (m.feature_dim, 0.5)
    feats = torch.randn(6, m.feature_dim)
    feats[:, start:end] = torch.nn.functional.normalize(feats[:, start:end] + 3.0, dim=1)  # a shared direction
    m.head.set_joined_centre(feats[:4])
    with torch.no_grad():
        m.head.attribute.weight.normal_(0, 0.01)
        m.head.set_attribute_radius([(feats, None)])
        e = m.head.embed(feats)
        m.head.joined = None  # the same head without the join
        rest = m.head.embed(feats)
        m.head.joined = (start, end, w)
        ident = feats[:, start:end] - m.head.joined_centre
        ident = torch.nn.functional.normalize(ident, dim=1)
    assert e.shape == (6, m.config.embedding_dim)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(6))
    torch.testing.assert_close(e @ e.T, (rest @ rest.T + w * w * ident @ ident.T) / (1 + w * w))
    assert (ident @ ident.T).min() < 0  # centring removed the shared direction that made every pair alike
    again = load(m.save(tmp_path / "joined"))
    torch.testing.assert_close(again.head.joined_centre, m.head.joined_centre)
    np.testing.assert_allclose(again.embed([astronaut]), m.embed([astronaut]), atol=1e-5)
    with pytest.raises(PerFaceError, match="second_identity_dim"):
        PerFaceModel(ModelConfig(**cfg, second_identity_weight=0.5, second_identity_dim=128))
    with pytest.raises(PerFaceError, match="last level is 'head'"):
        PerFaceModel(ModelConfig(**{**cfg, "second_levels": ("head", "stage5")}, second_identity_weight=0.5,
                                 second_identity_dim=1024))
