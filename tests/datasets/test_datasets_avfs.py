"""Tests for perface.datasets.avfs on a miniature of the AVFS v1 JSON layout."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from perface.datasets import DatasetError, DatasetWarning, avfs_image_path, load_avfs

# Same structure as ooo_train_val.json: trials keyed by index, 1 = train / 0 = validation.
TRIALS = {
    "0": {
        "triplet_questions": [[1, 2, 3], [4, 5, 6], [7, 8, 9]],
        "odd_one_out_positions": [2, 0, 1],
        "split": [1, 1, 0],
        "annotator_id": "ann-a",
    },
    "1": {
        # [3, 1, 2] repeats {1, 2, 3}: 3 is odd again; [2, 3, 1] picks 1 (the reference) as odd.
        "triplet_questions": [[3, 1, 2], [2, 3, 1], [6, 4, 5]],
        "odd_one_out_positions": [0, 2, 2],
        "split": [1, 1, 1],
        "annotator_id": "ann-b",
    },
}


@pytest.fixture
def avfs(tmp_path: Path, write_image: Callable[..., Path]) -> tuple[Path, Path]:
    images = tmp_path / "ffhq160x160"
    for i in range(1, 10):
        write_image(images / f"{i - i % 1000:05d}" / f"{i:05d}.png")  # the AVFS code's FFHQ layout
    path = tmp_path / "ooo_train_val.json"
    path.write_text(json.dumps(TRIALS))
    return path, images


def test_pools_repeated_questions_into_votes(avfs: tuple[Path, Path]) -> None:
    path, images = avfs
    s = load_avfs(path, images)
    assert [t.id for t in s] == ["avfs:1-2-3", "avfs:4-5-6", "avfs:7-8-9"]
    t = s[0]  # odd one out: 3 (twice), 1 (once, says nothing about 2 vs 3)
    assert (t.reference.name, t.a.name, t.b.name) == ("00001.png", "00002.png", "00003.png")
    assert (t.votes_a, t.votes_b) == (2, 0)
    u = s[1]  # 4 odd once, 5 odd once: tie, first in question order (4) becomes the negative
    assert (u.reference.name, u.a.name, u.b.name) == ("00005.png", "00006.png", "00004.png")
    assert (u.votes_a, u.votes_b) == (1, 0)
    v = s[2]
    assert (v.reference.name, v.a.name, v.b.name) == ("00007.png", "00009.png", "00008.png")
    assert all(x.positive == x.a for x in s)


def test_split_filter(avfs: tuple[Path, Path]) -> None:
    path, images = avfs
    assert [t.id for t in load_avfs(path, images, split="val")] == ["avfs:7-8-9"]
    train = load_avfs(path, images, split="train")
    assert len(train) == 2 and train.name == "AVFS-ooo_train_val-train"


def test_test_file_without_split_and_list_form(tmp_path: Path, avfs: tuple[Path, Path]) -> None:
    _, images = avfs
    test_file = tmp_path / "ooo_test_same_stimuli.json"
    trials = [{k: v for k, v in trial.items() if k != "split"} for trial in TRIALS.values()]
    test_file.write_text(json.dumps(trials))
    assert len(load_avfs(test_file, images)) == 3
    with pytest.raises(DatasetError, match="split"):
        load_avfs(test_file, images, split="train")


def test_missing_images_dropped_with_one_warning(avfs: tuple[Path, Path]) -> None:
    path, images = avfs
    (images / "00000" / "00008.png").unlink()
    with pytest.warns(DatasetWarning, match="dropped 1 of 3") as rec:
        s = load_avfs(path, images)
    assert len(rec) == 1 and len(s) == 2


def test_image_resolution(tmp_path: Path, write_image: Callable[..., Path]) -> None:
    write_image(tmp_path / "01234.png")
    write_image(tmp_path / "02000" / "02001.png")
    write_image(tmp_path / "7.jpg")
    write_image(tmp_path / "face_a.png")
    assert avfs_image_path(tmp_path, 1234) == tmp_path / "01234.png"
    assert avfs_image_path(tmp_path, 2001) == tmp_path / "02000" / "02001.png"
    assert avfs_image_path(tmp_path, "7") == tmp_path / "7.jpg"
    assert avfs_image_path(tmp_path, "face_a.png") == tmp_path / "face_a.png"
    assert avfs_image_path(tmp_path, 99) is None


@pytest.mark.parametrize(
    ("trial", "match"),
    [
        ({"triplet_questions": [[1, 2, 3]], "odd_one_out_positions": [3]}, "must be 0, 1 or 2"),
        ({"triplet_questions": [[1, 2, 2]], "odd_one_out_positions": [0]}, "3 distinct"),
        ({"triplet_questions": [[1, 2, 3]], "odd_one_out_positions": []}, "1 questions but 0"),
        ({"odd_one_out_positions": [0]}, "triplet_questions"),
        ({"triplet_questions": [[1, None, 3]], "odd_one_out_positions": [0]}, "bad image id"),
    ],
)
def test_bad_json_errors(tmp_path: Path, avfs: tuple[Path, Path], trial: dict, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"0": trial}))
    with pytest.raises(DatasetError, match=match) as err:
        load_avfs(path, avfs[1])
    assert "bad.json, trial 0" in str(err.value)


def test_unreadable_or_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_avfs(tmp_path / "x.json", tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        load_avfs(tmp_path / "nope.json", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        (tmp_path / "y.json").write_text(json.dumps(TRIALS))
        with pytest.raises(DatasetError, match="no usable triplets"):
            load_avfs(tmp_path / "y.json", tmp_path / "no-images")
