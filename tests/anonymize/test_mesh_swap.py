"""perface.anonymize.mesh_swap: a donor mapped onto a face through both faces' 3-D meshes."""

from __future__ import annotations

import numpy as np
import pytest

from perface.anonymize.mesh_swap import MeshSwapper, fill_from_around, signed_areas, triangles
from perface.face.align import umeyama
from perface.face.detect import detect
from perface.face.mesh import face_mesh


@pytest.fixture(scope="module")
def donor():
    from perface.anonymize.anonymizer import default_gallery_path
    from perface.anonymize.gallery import Gallery

    gallery = Gallery.open(default_gallery_path(), readonly=True)
    d = gallery.get(gallery.ids(("female", None))[0])
    return d.crop_rgb(), d.landmarks


def test_umeyama_recovers_a_known_3d_pose():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(50, 3))
    c, s = np.cos(0.7), np.sin(0.7)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])  # a turn about the vertical axis (yaw)
    moved = 2.5 * pts @ rot.T + [10, -3, 4]
    scale, r, t = umeyama(pts, moved)
    assert np.isclose(scale, 2.5) and np.allclose(r, rot) and np.allclose(t, [10, -3, 4])


def test_the_donor_replaces_the_face_and_nothing_far_from_it(astronaut, donor):
    face = detect(astronaut)[0]
    sw = MeshSwapper()
    res = sw.swap_face(astronaut, face.box, face.landmarks[:2], *donor, donor_key="d")
    assert res.ok and res.info["triangles_drawn"] > 500
    x1, y1, x2, y2 = (int(v) for v in face.box)
    cx, cy, r = (x1 + x2) // 2, (y1 + y2) // 2, (x2 - x1) // 4
    assert res.mask[cy - r:cy + r, cx - r:cx + r].min() > 0.5  # the centre of the face is the donor's
    changed = np.abs(res.image.astype(int) - astronaut).sum(2) > 0
    assert changed[cy - r:cy + r, cx - r:cx + r].mean() > 0.95
    far = np.ones(changed.shape, bool)
    far[max(0, y1 - 60):y2 + 60, max(0, x1 - 60):x2 + 60] = False
    assert not changed[far].any()
    from perface.face.identity import SAME_PERSON_COSINE
    from perface.face.recognizers import get_recognizer

    dlib = get_recognizer("dlib")
    same = float(dlib.score(dlib.embed(astronaut, [face]), dlib.embed(res.image, [face]))[0])
    assert same < SAME_PERSON_COSINE  # dlib no longer calls it the same person


def test_the_donors_mesh_is_fitted_once_and_its_triangles_face_the_camera(donor):
    sw = MeshSwapper()
    mesh, tri = sw.donor_mesh("k", *donor)
    assert sw.donor_mesh("k", *donor)[0] is mesh and tri is triangles()
    every = triangles()
    assert mesh.score > 0.9 and len(every) > 800 and set(np.unique(every)) == set(range(468))
    assert (signed_areas(mesh.points[:, :2], every) > 0).mean() > 0.97  # counter-clockwise on a frontal face
    # ``forehead``: the upper forehead (and the hairline a donor may have there) is left out; the rest is kept
    _, low = MeshSwapper(forehead=0.4).donor_mesh("k", *donor)
    assert 0.6 * len(every) < len(low) < len(every)
    assert mesh.points[np.unique(low), 1].min() > mesh.points[:, 1].min() + 0.05 * np.ptp(mesh.points[:, 1])


def test_fill_from_around_paints_a_hole_from_its_surroundings():
    img = np.zeros((60, 60, 3), np.uint8)
    img[:, :30], img[:, 30:] = 40, 200
    hole = np.zeros((60, 60), bool)
    hole[20:40, 20:40] = True
    img[hole] = 255  # what was there must not show
    out = fill_from_around(img, hole, 3.0)
    assert np.array_equal(out[~hole], img[~hole])
    assert out[30, 21, 0] < 90 and out[30, 38, 0] > 150  # each side from its own neighbours
    assert out[hole].max() < 255


def test_no_mesh_no_swap(astronaut, donor):
    """A target the mesh does not fit (noise) is refused with the region to hide; the image is untouched."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (240, 240, 3), dtype=np.uint8)
    res = MeshSwapper().swap_face(noise, (60, 60, 180, 180), None, *donor)
    assert not res.ok and res.reason == "no face mesh fitted"
    assert np.array_equal(res.image, noise) and res.mask.sum() > 0


def test_a_tiny_face_is_refused(astronaut, donor):
    face = detect(astronaut)[0]
    sw = MeshSwapper(min_face_px=500)
    mesh = face_mesh(astronaut, face.box, face.landmarks[:2])
    d_mesh, tri = sw.donor_mesh("d", *donor)
    res = sw.swap_mesh(astronaut, mesh, donor[0], d_mesh, tri)
    assert not res.ok and res.reason == "too small"
