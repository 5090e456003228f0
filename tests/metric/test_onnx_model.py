"""The PerFace metric in ONNX Runtime equals the PyTorch model (embeddings and identity from one run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from perface.backbones import embed_chips, load_backbone
from perface.metric.model import load
from perface.metric.onnx_model import OnnxPerFaceModel, color_layout, load_inference

CHIPS = sorted((Path(__file__).resolve().parents[1] / "data" / "chips").glob("*.jpg"))


@pytest.fixture(scope="module")
def views() -> list[list[np.ndarray]]:
    """Two "views" of five faces (any 150 px chips do for equality), and the shipped model's second backbone's views
    (FaceRes beside dlib: the same chips at its 224 px)."""
    chips = [np.asarray(Image.open(f).convert("RGB")) for f in CHIPS[:10]]
    cfg = load_inference().config
    extra = [[np.asarray(Image.fromarray(c).resize((224, 224))) for c in chips[:5]] for _ in cfg.second_paddings]
    return [chips[:5], chips[5:], *extra]


def test_color_layout_equals_adaptive_pooling() -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 150, 150)).astype(np.float32)
    for grid in (6, 7):
        ref = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), grid).flatten(1).numpy()
        np.testing.assert_allclose(color_layout(x, grid), ref, atol=1e-6)


def test_onnx_model_equals_torch(views: list[list[np.ndarray]]) -> None:
    fast = load_inference()
    if not isinstance(fast, OnnxPerFaceModel):
        pytest.skip("ONNX Runtime is switched off (PERFACE_RUNTIME=torch)")
    ref = load()
    assert fast.model_id == ref.model_id and fast.config == ref.config
    emb, desc = fast.embed_with_identity(views)
    want = ref.embed_views(views)
    assert emb.shape == want.shape
    assert (emb * want).sum(1).min() >= 0.9999
    ident = embed_chips(load_backbone("dlib-resnet"), np.stack(views[0]))
    cos = (desc * ident).sum(1) / np.linalg.norm(desc, axis=1) / np.linalg.norm(ident, axis=1)
    assert cos.min() >= 0.9999
    np.testing.assert_allclose(fast.embed_views(views, batch_size=2), emb, atol=1e-5)


def test_align_cuts_the_dlib_chips_from_one_shape(group_image_path) -> None:
    from perface.face.align import dlib_chip
    from perface.face.detect import detect
    from perface.face.io import read_image

    image = read_image(group_image_path)
    face = detect(image)[0]
    fast = load_inference()
    cuts = [(150, p) for p in fast.config.views] + [(224, p) for p in fast.config.second_paddings]
    assert len(cuts) == 3  # the shipped model: dlib's two views and FaceRes's 224 px chip of the first
    for chip, (side, pad) in zip(OnnxPerFaceModel.align(fast, image, face), cuts, strict=True):
        np.testing.assert_array_equal(chip, dlib_chip(image, face, side, padding=pad).crop)


@pytest.mark.parametrize(("second_views", "second_flip", "sides", "levels", "crop", "join"), [
    ((), True, [150, 150, 224, 224], ("stage4", "head"), "chip", 0.0),
    # the cheap variant (one FaceRes run per face, its mirror rows reused), with FaceRes's layer past its identity
    ((0.25,), False, [150, 150, 224], ("stage4", "head", "feats"), "chip", 0.0),
    # FaceRes on its own recognizer's crop (the detector's box + 10%), not dlib's chip
    ((0.1,), False, [150, 150, 224], ("stage4", "head"), "box", 0.0),
    # FaceRes's identity output joined to the embedding (second_identity_weight)
    ((0.25,), False, [150, 150, 224], ("stage4", "head"), "chip", 1.0),
])
def test_onnx_model_with_a_second_backbone_equals_torch(tmp_path, group_image_path, second_views, second_flip,
                                                        sides, levels, crop, join) -> None:
    from perface.face.detect import detect
    from perface.face.io import read_image
    from perface.metric.model import ModelConfig, PerFaceModel

    torch.manual_seed(0)
    ref = PerFaceModel(ModelConfig(embed_dim=16, hidden=32, second_backbone="faceres",
                                   second_levels=levels, second_views=second_views,
                                   second_flip=second_flip, second_crop=crop, second_identity_weight=join,
                                   second_identity_dim=1024 if join else 0))
    with torch.no_grad():  # a head that is not the identity map: standardisation from random statistics
        ref.head.feat_mean.normal_(0, 0.1)
        if join:
            ref.head.joined_centre.normal_(0, 0.02)
    folder = ref.save(tmp_path / "two")
    fast = load_inference(folder)
    if not isinstance(fast, OnnxPerFaceModel):
        pytest.skip("ONNX Runtime is switched off (PERFACE_RUNTIME=torch)")
    image = read_image(group_image_path)
    faces = detect(image)[:3]
    chips = [fast.align(image, f) for f in faces]
    assert [c.shape[0] for c in chips[0]] == sides
    for got, want in zip(chips[0], ref.align(image, faces[0]), strict=True):
        np.testing.assert_array_equal(got, want)
    views = [[c[v] for c in chips] for v in range(len(sides))]
    emb, desc = fast.embed_with_identity(views)
    want = ref.embed_views(views)
    assert emb.shape == (3, ref.config.embedding_dim)
    assert (emb * want).sum(1).min() >= 0.9999
    assert desc.shape == (3, 128)
