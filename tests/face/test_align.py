"""perface.face.align: crops land the landmarks on the template and the transform maps back."""

from __future__ import annotations

import numpy as np

from perface.face.align import ARCFACE_TEMPLATE_112, arcface_crop, dlib_chip, similarity_matrix
from perface.face.detect import detect


def test_similarity_matrix_recovers_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    ang, s, t = 0.3, 1.7, np.array([5.0, -3.0])
    rot = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = src @ rot.T + t
    m = similarity_matrix(src, dst)
    assert np.allclose(m[:, :2], rot, atol=1e-9) and np.allclose(m[:, 2], t, atol=1e-9)


def test_arcface_crop(astronaut):
    face = detect(astronaut)[0]
    a = arcface_crop(astronaut, face)
    assert a.crop.shape == (112, 112, 3)
    assert np.abs(a.to_crop(face.landmarks) - ARCFACE_TEMPLATE_112).max() < 6
    assert np.abs(a.to_image(a.to_crop(face.landmarks)) - face.landmarks).max() < 1e-3


def test_dlib_chip_transform_matches_pixels(astronaut):
    import cv2

    face = detect(astronaut)[0]
    a = dlib_chip(astronaut, face)
    assert a.crop.shape == (150, 150, 3)
    rewarped = cv2.warpAffine(astronaut, a.matrix, (150, 150), flags=cv2.INTER_LINEAR)
    assert np.abs(rewarped.astype(int) - a.crop.astype(int)).mean() < 2.0
    centre = a.to_image(np.array([[75.0, 75.0]]))[0]
    assert face.box[0] < centre[0] < face.box[2] and face.box[1] < centre[1] < face.box[3]
