"""perface.face.mesh: MediaPipe FaceMesh's 468 points land on the face, in the image's coordinates."""

from __future__ import annotations

import numpy as np

from perface.face.detect import detect
from perface.face.mesh import EYE_A, EYE_B, SIDE, crop_transform, face_mesh


def test_the_mesh_lands_on_the_astronauts_face(astronaut):
    face = detect(astronaut)[0]
    mesh = face_mesh(astronaut, face.box, face.landmarks[:2])
    assert mesh.points.shape == (468, 3) and mesh.score > 0.9
    x1, y1, x2, y2 = face.box
    pad = 0.15 * (x2 - x1)
    xy = mesh.points[:, :2]
    inside = (xy[:, 0] > x1 - pad) & (xy[:, 0] < x2 + pad) & (xy[:, 1] > y1 - 2 * pad) & (xy[:, 1] < y2 + pad)
    assert inside.mean() > 0.98
    # its eye contours surround the detector's eye landmarks (the image's left eye is the face's right)
    eyes = sorted([xy[list(EYE_A)].mean(0), xy[list(EYE_B)].mean(0)], key=lambda p: p[0])
    for found, want in zip(eyes, sorted(face.landmarks[:2], key=lambda p: p[0]), strict=True):
        assert np.hypot(*(found - want)) < 0.08 * (x2 - x1)


def test_the_same_face_turned_in_the_image_gives_the_same_mesh(astronaut):
    """The crop is levelled by the eyes: the mesh of a turned copy, turned back, is the upright one."""
    face = detect(astronaut)[0]
    up = face_mesh(astronaut, face.box, face.landmarks[:2])
    h, w = astronaut.shape[:2]
    turned = np.ascontiguousarray(np.rot90(astronaut, 1))  # counter-clockwise: (x, y) -> (y, w - 1 - x)
    lm = np.c_[face.landmarks[:, 1], w - 1 - face.landmarks[:, 0]]
    x1, y1, x2, y2 = face.box
    box = (y1, w - 1 - x2, y2, w - 1 - x1)
    rot = face_mesh(turned, box, lm[:2])
    back = np.c_[w - 1 - rot.points[:, 1], rot.points[:, 0]]
    assert np.median(np.hypot(*(back - up.points[:, :2]).T)) < 0.03 * (x2 - x1)


def test_noise_is_not_a_face():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    assert face_mesh(noise, (40, 40, 160, 160)).score < 0.2


def test_crop_transform_centres_and_levels_the_box():
    a = crop_transform((100, 50, 200, 150), np.array([[120.0, 90.0], [180.0, 90.0]]), enlarge=1.5)
    centre = a @ np.array([150.0, 100.0, 1.0])
    assert np.allclose(centre, (SIDE / 2, SIDE / 2))
    assert np.isclose(np.hypot(*a[:, 0]), SIDE / 150)  # the box's side times 1.5 fills the crop
    tilted = crop_transform((100, 50, 200, 150), np.array([[120.0, 80.0], [180.0, 100.0]]))
    eyes = tilted @ np.array([[120.0, 80.0, 1.0], [180.0, 100.0, 1.0]]).T
    assert abs(eyes[1, 0] - eyes[1, 1]) < 1e-6  # levelled
