"""perface.face.recognizers: each recognizer embeds, scores a mirrored face above another face, and is calibrated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perface.face.detect import Face, detect
from perface.face.recognizers import RECOGNIZERS, box_crop, get_recognizer

CHIPS = Path(__file__).parents[1] / "data" / "chips"


@pytest.fixture(scope="module")
def faces(astronaut):
    """The astronaut, her mirror image, and a different (synthetic) person, each with its detected face."""
    other = np.asarray(Image.open(CHIPS / "omi_1.jpg").convert("RGB"))
    other = np.pad(other, ((60, 60), (60, 60), (0, 0)), mode="edge")  # room around the chip for every crop
    mirror = np.ascontiguousarray(astronaut[:, ::-1])
    out = []
    for im in (astronaut, mirror, other):
        found = detect(im)
        assert found, "test face not detected"
        out.append((im, max(found, key=lambda f: f.width * f.height)))
    return out


@pytest.mark.parametrize("name", RECOGNIZERS)
def test_mirrored_face_scores_above_another_person(name, faces):
    rec = get_recognizer(name)
    feats = np.concatenate([rec.embed(im, [f]) for im, f in faces])
    assert feats.shape[0] == 3 and np.isfinite(feats).all()
    if name != "lbph":
        np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    same, other = rec.score(feats[0], feats[1])[0], rec.score(feats[0], feats[2])[0]
    assert same > other
    m = rec.score_matrix(feats, feats)
    assert m.shape == (3, 3) and m[0, 1] == pytest.approx(same, rel=1e-5, abs=1e-4)


@pytest.mark.parametrize("name", RECOGNIZERS)
def test_every_recognizer_is_calibrated(name):
    cal = get_recognizer(name).calibration
    assert cal is not None, f"{name} has no shipped calibration (run benchmarks/recognizers.py)"
    assert 0.5 < cal.auc <= 1.0 and 0.0 <= cal.eer < 0.5
    t = cal.thresholds
    assert t["far_1e-3"] >= t["far_1e-2"] >= t["eer"] or name == "lbph" and t["far_1e-3"] >= t["far_1e-2"]
    assert "CelebA" in cal.pairs


def test_networks_beat_the_texture_baseline():
    """The calibration itself says what the issue measured: the networks separate identities far better than LBPH."""
    auc = {n: get_recognizer(n).calibration.auc for n in RECOGNIZERS}
    assert min(auc["dlib"], auc["mobilefacenet"], auc["faceres"], auc["facenet"]) > auc["lbph"] + 0.1


def test_box_crop_maps_the_grown_box_onto_the_output():
    img = np.zeros((100, 100, 3), np.uint8)
    img[40:60, 30:50] = 255  # the face box (30, 40)-(50, 60), 20 px
    face = Face(box=(30.0, 40.0, 50.0, 60.0), score=1.0, landmarks=np.zeros((5, 2), np.float32))
    crop = box_crop(img, face, 30, margin=0.25)  # box + 5 px each side = 30 px -> 1 px per px
    assert crop.shape == (30, 30, 3)
    assert crop[5:25, 5:25].min() == 255 and crop[:4].max() == 0 and crop[:, 26:].max() == 0


def test_unknown_recognizer_is_refused():
    with pytest.raises(ValueError, match="unknown recognizer"):
        get_recognizer("arcface")


@pytest.mark.parametrize("name", ["mobilefacenet", "mobileface"])
def test_small_faces_are_checked_at_their_size_threshold(name):
    """Shrunk faces look alike to a network: the shipped thresholds for small faces are higher than the full-size
    one, fall as faces grow, and the full-size one applies above the largest calibrated size."""
    from perface.face.recognizers import _size_calibrations

    rec = get_recognizer(name)
    full = rec.threshold("far_1e-2")
    sizes, by_size = _size_calibrations()
    assert len(sizes) and name in by_size
    values = [rec.threshold_for("far_1e-2", s) for s in (16, 17, 24, 40, float(sizes[-1]), 1000)]
    assert values[0] == pytest.approx(by_size[name]["far_1e-2"][0]) and values[0] > full + 0.05
    assert values[1] == pytest.approx(by_size[name]["far_1e-2"][1])  # 17 px: the next calibrated size up
    assert all(a >= b for a, b in zip(values, values[1:], strict=False)) and values[-1] == full
    assert rec.threshold_for("eer", 16) == rec.threshold("eer")  # no size calibration for that point: full size
