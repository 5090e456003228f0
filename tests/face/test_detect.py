"""perface.face.detect on a real face, on no face, many faces, tiny faces and faces cut by the border."""

from __future__ import annotations

import numpy as np
import pytest

from perface.face.detect import detect, five_from_68

ASTRONAUT_BOX = (177, 76, 270, 170)


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("backend", ["centerface", "hog"])
def test_astronaut_one_face(astronaut, backend):
    faces = detect(astronaut, backend=backend)
    assert len(faces) == 1
    f = faces[0]
    assert _iou(f.box, ASTRONAUT_BOX) > 0.5
    left_eye, right_eye, nose, ml, mr = f.landmarks
    assert left_eye[0] < right_eye[0] and ml[0] < mr[0]
    assert left_eye[1] < nose[1] < ml[1]


@pytest.mark.parametrize("backend", ["centerface", "hog"])
def test_no_face(backend):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    assert detect(np.full((240, 320, 3), 128, np.uint8), backend=backend) == []
    assert len(detect(noise, backend=backend)) == 0


def test_many_faces(group_image_path):
    from perface.face.io import read_image

    img = read_image(group_image_path)
    faces = detect(img)
    assert len(faces) == 3
    assert faces[0].score >= faces[-1].score


def test_tiny_face_and_min_size(astronaut):
    import cv2

    small = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)  # face about 24 px
    faces = detect(small)
    assert len(faces) == 1 and 15 < faces[0].size < 40
    assert detect(small, min_size=50) == []


def test_face_cut_by_border(astronaut):
    cut = astronaut[110:400, 215:500]  # left half of the face and the forehead cut away
    faces = detect(cut)
    assert len(faces) >= 1
    b = faces[0].box
    assert b[0] >= 0 and b[1] >= 0 and b[2] <= cut.shape[1] and b[3] <= cut.shape[0]


def test_dense_landmarks(astronaut):
    f = detect(astronaut, dense_landmarks=True)[0]
    assert f.landmarks68.shape == (68, 2)
    assert np.abs(five_from_68(f.landmarks68)[:2] - f.landmarks[:2]).max() < 8


def test_rejects_bad_array():
    with pytest.raises(ValueError):
        detect(np.zeros((10, 10), np.uint8))
