"""perface.face.identity: same face > flipped face > other face, for both engines; batched == single."""

from __future__ import annotations

import numpy as np
import pytest

from perface.face.align import dlib_chip
from perface.face.detect import detect
from perface.face.identity import SAME_PERSON_COSINE, cosine_similarity, get_embedder, l2_normalize
from perface.face.io import read_image


@pytest.fixture(scope="module")
def chips(astronaut, group_image_path):
    face = detect(astronaut)[0]
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    group = read_image(group_image_path)
    others = [f for f in detect(group) if f.box[0] > 380]  # the two synthetic faces
    return {
        "same": dlib_chip(astronaut, face).crop,
        "flip": dlib_chip(flipped, detect(flipped)[0]).crop,
        "other": dlib_chip(group, others[0]).crop,
    }


@pytest.mark.parametrize("engine", ["torch", "dlib"])
def test_similarity_ordering(chips, engine):
    emb = get_embedder(engine).embed_chips([chips["same"], chips["same"], chips["flip"], chips["other"]])
    assert emb.shape == (4, 128)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    same = cosine_similarity(emb[0], emb[1])
    flip = cosine_similarity(emb[0], emb[2])
    other = cosine_similarity(emb[0], emb[3])
    assert same > 0.9999 > flip > other
    assert flip >= SAME_PERSON_COSINE > other


def test_engines_agree(chips):
    a = get_embedder("torch").embed_chips(list(chips.values()))
    b = get_embedder("dlib").embed_chips(list(chips.values()))
    assert (a * b).sum(axis=1).min() > 0.9999


def test_deterministic_and_batch_invariant(chips):
    e = get_embedder("torch")
    batch = e.embed_chips([chips["same"], chips["other"]])
    single = e.embed_chips([chips["other"]])
    assert np.abs(batch[1] - single[0]).max() < 1e-5
    assert np.array_equal(e.embed_chips([chips["same"]]), e.embed_chips([chips["same"]]))


def test_bad_chip_shape():
    with pytest.raises(ValueError, match="150x150"):
        get_embedder("dlib").embed_chips([np.zeros((112, 112, 3), np.uint8)])


def test_l2_normalize_zero_row():
    out = l2_normalize(np.array([[0.0, 0.0], [3.0, 4.0]]))
    assert np.allclose(out, [[0, 0], [0.6, 0.8]])
