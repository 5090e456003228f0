"""Recall where a miss is a leak: a small face in a large image, turned faces, a narrow strip, a grid.

All images are made here from scikit-image's astronaut photo (face box about (177, 76)-(270, 170)).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from perface.face.align import arcface_crop
from perface.face.detect import DetectConfig, detect, detect_with_unsure, plan_views

ASTRONAUT_BOX = np.array([177, 76, 270, 170], np.float32)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _face_patch(astronaut: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut's head (a square 1.8 times the face) scaled so the face is ``width`` px wide,
    and the face box in the patch."""
    cx, cy = (ASTRONAUT_BOX[0] + ASTRONAUT_BOX[2]) / 2, (ASTRONAUT_BOX[1] + ASTRONAUT_BOX[3]) / 2
    half = int(0.9 * (ASTRONAUT_BOX[2] - ASTRONAUT_BOX[0]))
    x0, y0 = int(cx) - half, int(cy) - half
    patch = astronaut[y0 : y0 + 2 * half, x0 : x0 + 2 * half]
    f = width / float(ASTRONAUT_BOX[2] - ASTRONAUT_BOX[0])
    side = int(round(2 * half * f))
    small = cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
    return small, (ASTRONAUT_BOX - np.array([x0, y0, x0, y0])) * (side / (2 * half))


def _canvas(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A textured face-free background (smoothed noise)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(60, 200, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)


def _unrotate(points: np.ndarray, k: int, w: int, h: int) -> np.ndarray:
    """Points of np.rot90(img, k) back into img (h x w)."""
    x, y = points[..., 0], points[..., 1]
    return [points, np.stack([w - y, x], -1), np.stack([w - x, h - y], -1), np.stack([y, h - x], -1)][k]


OLD = {"tiles": False, "rotations": (0,), "recheck_threshold": None}  # one shrunken pass, as before


def _large_with_small_face(astronaut):
    patch, box = _face_patch(astronaut, 20)
    img = _canvas(2000, 3000)
    x, y = 1713, 1187
    img[y : y + patch.shape[0], x : x + patch.shape[1]] = patch
    return img, box + np.array([x, y, x, y])


def test_20px_face_in_3000x2000_is_found_upright(astronaut):
    img, truth = _large_with_small_face(astronaut)
    faces = detect(img, rotations=(0,))
    assert len(faces) == 1 and _iou(faces[0].box, truth) > 0.3
    # the shrunken whole-image view alone (the detector before tiling) loses it
    assert not any(_iou(f.box, truth) > 0.3 for f in detect(img, **OLD))


@pytest.mark.slow
def test_20px_face_in_3000x2000_is_found_with_defaults(astronaut):
    img, truth = _large_with_small_face(astronaut)
    faces = detect(img)
    assert len(faces) == 1 and _iou(faces[0].box, truth) > 0.3 and faces[0].rotation == 0


def test_tiles_cover_a_large_image():
    cfg = DetectConfig()
    views = plan_views(2000, 3000, DetectConfig(rotations=(0,)))
    tiles = [v for v in views if v.kind == "tile"]
    assert len(views) == 1 + len(tiles) and len(tiles) == 6
    cover = np.zeros((2000, 3000), bool)
    for v in tiles:
        x0, y0, x1, y1 = v.region
        assert v.scale == 1.0 and (x1 - x0) <= cfg.tile_side and (y1 - y0) <= cfg.tile_side
        cover[y0:y1, x0:x1] = True
    assert cover.all()
    xs = sorted({v.region[0] for v in tiles})
    ends = sorted({v.region[2] for v in tiles})
    assert all(e - s >= cfg.tile_overlap for s, e in zip(xs[1:], ends[:-1], strict=True))
    # an ordinary photo: the single whole-image run (4 with the turned copies)
    assert len(plan_views(480, 640, DetectConfig(rotations=(0,)))) == 1
    assert len(plan_views(480, 640)) == 4
    # a huge image is tiled at a bounded resolution
    huge = [v for v in plan_views(8000, 12000, DetectConfig(rotations=(0,))) if v.kind == "tile"]
    assert huge[0].scale == pytest.approx(4096 / 12000)


def test_face_on_a_tile_seam_is_found_once(astronaut):
    patch, box = _face_patch(astronaut, 40)
    img = _canvas(1000, 3000, seed=1)
    seam = [v for v in plan_views(1000, 3000, DetectConfig(rotations=(0,))) if v.kind == "tile"][1].region[0]
    x, y = seam + 40 - patch.shape[1] // 2, 400  # the face straddles the left edge of the second tile
    img[y : y + patch.shape[0], x : x + patch.shape[1]] = patch
    truth = box + np.array([x, y, x, y])
    faces = detect(img, rotations=(0,))
    assert len(faces) == 1 and _iou(faces[0].box, truth) > 0.5


@pytest.mark.parametrize("k", [1, 2, 3])
def test_turned_face_found_with_landmarks_in_face_order(astronaut, k):
    upright = detect(astronaut)[0]
    turned = np.ascontiguousarray(np.rot90(astronaut, k))
    faces = detect(turned)
    assert len(faces) == 1
    f = faces[0]
    # np.rot90(turned, 4 - k) is upright again
    assert f.rotation == ((4 - k) % 4) * 90
    assert f.to_dict()["rotation"] == f.rotation
    # mapped back to the upright photo, each landmark lands on the same point of the face
    back = _unrotate(f.landmarks, k, astronaut.shape[1], astronaut.shape[0])
    assert np.abs(back - upright.landmarks).max() < 6
    # so the aligned crop is the upright face, not a turned or mirrored one
    ref = arcface_crop(astronaut, upright).crop.astype(np.float32)
    crop = arcface_crop(turned, f).crop.astype(np.float32)
    mirrored = arcface_crop(turned, type(f)(f.box, f.score, f.landmarks[[1, 0, 2, 4, 3]])).crop.astype(np.float32)
    assert np.abs(crop - ref).mean() < 25  # 12-19 with the float graph, 14-22 with the 8-bit one (default)
    assert np.abs(mirrored - ref).mean() > 2 * np.abs(crop - ref).mean()


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_small_turned_face_in_a_photo(astronaut, rotation):
    patch, box = _face_patch(astronaut, 40)
    k = (-(rotation // 90)) % 4
    turned = np.ascontiguousarray(np.rot90(patch, k))
    img = _canvas(480, 640, seed=2)
    x, y = 300, 200
    img[y : y + turned.shape[0], x : x + turned.shape[1]] = turned
    faces = detect(img)
    assert len(faces) == 1
    assert faces[0].rotation == rotation
    upright_only = detect(img, rotations=(0,))
    assert all(f.rotation == 0 for f in upright_only)


def test_narrow_strip(astronaut):
    patch, box = _face_patch(astronaut, 50)
    strip = _canvas(150, 2000, seed=3)
    y = (150 - patch.shape[0]) // 2
    strip[y : y + patch.shape[0], 1200 : 1200 + patch.shape[1]] = patch
    truth = box + np.array([1200, y, 1200, y])
    faces = detect(strip)
    assert len(faces) == 1 and _iou(faces[0].box, truth) > 0.4
    # the whole-image view alone shrinks the strip to 640x48 and loses the face
    assert detect(strip, **OLD) == []
    tall = np.ascontiguousarray(np.rot90(strip, -1))  # a vertical strip with the face turned
    assert len(detect(tall)) == 1


def test_grid_of_small_faces(astronaut):
    img = _canvas(900, 1200, seed=4)
    rng = np.random.default_rng(0)
    truths = []
    for i in range(5):
        for j in range(6):
            patch, box = _face_patch(astronaut, float(rng.uniform(16, 26)))
            x, y = 60 + j * 190, 50 + i * 170
            img[y : y + patch.shape[0], x : x + patch.shape[1]] = patch
            truths.append(box + np.array([x, y, x, y]))
    faces = detect(img)
    found = [any(_iou(f.box, t) > 0.3 for f in faces) for t in truths]
    assert all(found), f"{sum(found)} of {len(truths)} found"
    assert len(faces) == len(truths)


def test_unsure_band(astronaut):
    faces, unsure = detect_with_unsure(astronaut, threshold=0.97, unsure_threshold=0.25)
    assert faces == [] and len(unsure) == 1
    assert 0.25 <= unsure[0].score < 0.97 and _iou(unsure[0].box, ASTRONAUT_BOX) > 0.5
    faces, unsure = detect_with_unsure(astronaut)
    assert len(faces) == 1 and unsure == []
    assert detect_with_unsure(astronaut, threshold=0.97, unsure_threshold=None) == ([], [])
    stats: dict = {}
    detect_with_unsure(astronaut, stats=stats)
    assert stats["runs"] == 4 and stats["recheck_candidates"] >= 1 and stats["work_640"] > 0
