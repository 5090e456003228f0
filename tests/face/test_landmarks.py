"""Tests for perface.face.landmarks: dlib 68/5-point prediction, mirroring and 5-point reductions."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from perface.face import landmarks as L

ASTRO_BOX = (177.0, 76.0, 270.0, 170.0)


@pytest.fixture(scope="module")
def lm68(astronaut: np.ndarray) -> np.ndarray:
    return L.predict_landmarks68(astronaut, ASTRO_BOX)


def test_predict68_shape_and_layout(lm68: np.ndarray) -> None:
    assert lm68.shape == (68, 2) and lm68.dtype == np.float32
    x1, y1, x2, y2 = ASTRO_BOX
    assert np.all(lm68[:, 0] > x1 - 15) and np.all(lm68[:, 0] < x2 + 15)
    assert np.all(lm68[:, 1] > y1 - 15) and np.all(lm68[:, 1] < y2 + 15)
    left_eye, right_eye = lm68[36:42].mean(0), lm68[42:48].mean(0)
    assert left_eye[0] < lm68[30, 0] < right_eye[0]  # nose tip between the eyes (image left to right)
    assert lm68[30, 1] > left_eye[1] and lm68[57, 1] > lm68[30, 1] and lm68[8, 1] > lm68[57, 1]
    assert 35 < L.inter_ocular_distance(lm68) < 55


def test_predictor_is_cached_and_thread_safe() -> None:
    L._PREDICTORS.pop(5, None)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(L.get_shape_predictor(5))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(g is got[0] for g in got)
    assert L.get_shape_predictor(68) is L.get_shape_predictor(68)
    with pytest.raises(ValueError):
        L.get_shape_predictor(7)  # type: ignore[arg-type]


def test_mirror_permutation_matches_flipped_prediction(astronaut: np.ndarray, lm68: np.ndarray) -> None:
    w = astronaut.shape[1]
    x1, y1, x2, y2 = ASTRO_BOX
    flipped = L.predict_landmarks68(astronaut[:, ::-1], (w - 1 - x2, y1, w - 1 - x1, y2))
    flipped[:, 0] = w - 1 - flipped[:, 0]
    assert sorted(L.IBUG68_MIRROR.tolist()) == list(range(68))
    assert np.abs(flipped[L.IBUG68_MIRROR] - lm68).mean() < 2.0
    assert np.abs(flipped - lm68).mean() > 5.0  # without the permutation the points do not match


def test_landmarks5(astronaut: np.ndarray, lm68: np.ndarray) -> None:
    five = L.landmarks5_from_68(lm68)
    assert five.shape == (5, 2) and five.dtype == np.float32
    assert five[0, 0] < five[2, 0] < five[1, 0]  # eyes around the nose tip
    assert five[3, 0] < five[4, 0] and five[3, 1] > five[2, 1]  # mouth corners below the nose
    dlib5 = L.predict_landmarks5(astronaut, ASTRO_BOX)
    assert dlib5.shape == (5, 2)
    assert np.abs(L.landmarks5_from_68(lm68, "dlib") - dlib5).max() < 4.0
    with pytest.raises(ValueError):
        L.landmarks5_from_68(lm68[:5])


def test_bad_inputs(astronaut: np.ndarray) -> None:
    with pytest.raises(ValueError):
        L.predict_landmarks68(astronaut[..., 0], ASTRO_BOX)
    with pytest.raises(ValueError):
        L.predict_landmarks68(astronaut.astype(np.float32), ASTRO_BOX)
    with pytest.raises(ValueError):
        L.predict_landmarks68(astronaut, (10, 10, 5, 20))
