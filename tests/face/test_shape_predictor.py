"""Tests for perface.face.shape_predictor: dlib's shape predictors in NumPy give dlib's points exactly."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from perface.face import shape_predictor as S
from perface.face.io import read_image

frm = pytest.importorskip("face_recognition_models")
dlib = pytest.importorskip("dlib")

PATHS = {68: frm.pose_predictor_model_location(), 5: frm.pose_predictor_five_point_model_location()}


@pytest.mark.parametrize("points", [68, 5])
def test_points_equal_dlib(points: int, astronaut: np.ndarray, group_image_path) -> None:
    ours = S.load_shape_predictor(PATHS[points])
    theirs = dlib.shape_predictor(PATHS[points])
    grey = np.ascontiguousarray(astronaut.mean(axis=2).astype(np.uint8))
    cases = [(astronaut, r) for r in S.probe_boxes(astronaut)]
    cases += [(img, r) for img in [read_image(group_image_path)] for r in S.probe_boxes(img)]
    cases += [(grey, (177, 76, 270, 170)), (grey, (150, 60, 300, 200))]
    assert len(cases) >= 20
    for image, rect in cases:
        shape = theirs(image, dlib.rectangle(*rect))
        want = np.array([(p.x, p.y) for p in shape.parts()])
        got = ours(image, rect)
        assert got.shape == (points, 2) and got.dtype == np.int64
        assert np.array_equal(got, want), (image.shape, rect)


def test_decoded_arrays_and_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PERFACE_CACHE_DIR", str(tmp_path))
    arrays = S.decode_dat(PATHS[5])
    levels, trees, leaves, dim = arrays["leaves"].shape
    assert (levels, trees, leaves, dim) == (15, 500, 16, 10) and arrays["initial"].shape == (10,)
    assert arrays["split_idx"].shape == (15, 500, 15, 2)
    assert arrays["deltas"].shape == (15, arrays["anchors"].shape[1], 2)
    stale = tmp_path / "onnx" / ".shape-killed-decode-x"  # what a decode killed long ago left behind
    stale.mkdir(parents=True)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    first = S.load_shape_predictor(PATHS[5])  # decodes and writes the cache
    cached = list(tmp_path.rglob("leaves.npy"))
    assert len(cached) == 1 and not list(tmp_path.rglob(".shape-*"))  # no temporary folder left, the stale one gone
    again = S.load_shape_predictor(PATHS[5])  # reads it, memory-mapped
    image = np.random.default_rng(0).integers(0, 256, (120, 100, 3), dtype=np.uint8)
    want = first(image, (10, 20, 80, 90))
    assert np.array_equal(want, again(image, (10, 20, 80, 90)))
    damaged = cached[0].with_name("split_thresh.npy")  # not the memory-mapped file the predictors above use
    size = damaged.stat().st_size
    damaged.write_bytes(damaged.read_bytes()[:100])  # a damaged cache is decoded and written again
    repaired = S.load_shape_predictor(PATHS[5])
    assert np.array_equal(repaired(image, (10, 20, 80, 90)), want)
    assert damaged.stat().st_size == size


@pytest.mark.parametrize("damage", ["truncated", "not a predictor", "empty"])
def test_unreadable_file_is_a_format_error(tmp_path, damage: str) -> None:
    data = Path(PATHS[5]).read_bytes()
    bad = tmp_path / "bad.dat"
    bad.write_bytes({"truncated": data[: len(data) // 2], "not a predictor": b"\x01\x02" + data[2:1000],
                     "empty": b""}[damage])
    with pytest.raises(S.ShapeFormatError):
        S.decode_dat(bad)


def test_landmarks_module_runs_the_port_for_68_points(astronaut: np.ndarray) -> None:
    from perface.face import landmarks as L

    assert isinstance(L.get_shape_predictor(68), S.ShapePredictor)
    want = dlib.shape_predictor(PATHS[68])(astronaut, dlib.rectangle(177, 76, 270, 170))
    got = L.predict_landmarks68(astronaut, (177.0, 76.0, 270.0, 170.0))
    assert np.array_equal(got, np.array([(p.x, p.y) for p in want.parts()], np.float32))


def test_image_of_another_type_is_refused() -> None:
    pred = S.load_shape_predictor(PATHS[5])
    with pytest.raises(ValueError, match="uint8"):
        pred(np.zeros((50, 50, 3), np.float32), (5, 5, 40, 40))
    with pytest.raises(ValueError, match="uint8"):
        pred(np.zeros((50, 50, 4), np.uint8), (5, 5, 40, 40))
