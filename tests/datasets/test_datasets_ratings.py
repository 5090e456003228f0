"""Tests for perface.datasets.ratings: rating-derived triplets, a stand-in for human similarity judgments."""

from __future__ import annotations

import gzip
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from perface.datasets import (
    DatasetError,
    DatasetWarning,
    RatingTripletConfig,
    attribute_table,
    build_rating_triplets,
    load_ratings,
    rating_space,
    rating_triplets,
    split_faces,
    split_half_reliability,
)

# Zero-mean offsets: every face's sample mean equals its true mean exactly, so the correct
# ordering of the rating-derived distance is known in advance.
OFFSETS = [-20, -10, 0, 10, 20] * 6


def write_omi(
    root: Path,
    means: dict[str, Sequence[float]],
    noise: dict[str, float] | None = None,
    n_ratings: int = 30,
    seed: int = 0,
    images: bool = True,
    extra: Sequence[str] = (),
) -> Path:
    """Write an OMI-like folder: ratings (deterministic offsets or Gaussian noise), means and images."""
    rng = np.random.default_rng(seed)
    n_faces = len(next(iter(means.values())))
    lines = ["rating,attribute,rating_type,stimulus"]
    for attr, values in means.items():
        for f in range(n_faces):
            if noise and attr in noise:
                ratings = values[f] + rng.normal(0, noise[attr], n_ratings)
            else:
                ratings = values[f] + np.array(OFFSETS[:n_ratings], dtype=float)
            lines += [f"{r:g},{attr},normal,{f + 1}" for r in np.round(ratings, 3)]
    lines += extra
    root.mkdir(parents=True, exist_ok=True)
    with gzip.open(root / "attribute_ratings.csv.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    header = ",".join(["stimulus", *means])
    rows = [",".join([str(f + 1), *(f"{means[a][f]:g}" for a in means)]) for f in range(n_faces)]
    (root / "attribute_means.csv").write_text("\n".join([header, *rows]) + "\n")
    if images:
        (root / "images").mkdir(exist_ok=True)
        for f in range(n_faces):
            (root / "images" / f"{f + 1}.jpg").write_bytes(b"jpg")
    return root


SIX = {
    "age": [10, 30, 50, 52, 54, 90],
    "hair": [20, 25, 40, 40, 40, 80],
    "skin": [30, 30, 50, 50, 50, 70],
}
SIX_CONFIG = RatingTripletConfig(
    attributes=("age", "hair", "skin"), gender_matched_fraction=0.0, n_candidates=60, bootstrap=200
)


def test_known_ordering_and_ambiguous_triplet_dropped(tmp_path: Path) -> None:
    root = write_omi(tmp_path / "omi", SIX)
    report = build_rating_triplets(root, SIX_CONFIG)
    assert report.n_candidates == 60  # every (anchor, unordered pair) of 6 faces
    kept = {t.id: t for t in report.triplets}
    assert "omi:1:2:6" in kept and "omi:6:5:1" in kept and "omi:3:2:6" in kept
    clear = kept["omi:1:2:6"]
    assert clear.reference == root / "images" / "1.jpg" and clear.positive == root / "images" / "2.jpg"
    assert clear.weight == 1.0 and (clear.votes_a, clear.votes_b) == (200, 0)
    # Face 4 is exactly as far from 3 as from 5: the order is a coin flip under resampling.
    assert not any(t.id in ("omi:4:3:5", "omi:4:5:3") for t in report.triplets)
    ambiguous = [a for a in report.agreement if a < 0.8]
    assert ambiguous and min(ambiguous) < 0.7
    for t in report.triplets:
        assert t.weight >= 0.95 and t.votes_a + t.votes_b == 200 and t.weight == t.votes_a / 200
        assert t.positive == t.a
    assert report.triplets == rating_triplets(root, SIX_CONFIG)  # deterministic


def test_true_distance_order_is_respected(tmp_path: Path) -> None:
    root = write_omi(tmp_path / "omi", SIX)
    report = build_rating_triplets(root, SIX_CONFIG)
    z = {a: (np.array(v) - np.mean(v)) / np.std(v) for a, v in SIX.items()}
    w = report.weights
    x = np.column_stack([z[a] * np.sqrt(w[a]) for a in SIX])
    for t in report.triplets:
        i, j, k = (int(f) - 1 for f in t.id.split(":")[1:])
        assert np.linalg.norm(x[i] - x[j]) < np.linalg.norm(x[i] - x[k])


def test_reliability_separates_signal_from_noise(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 60
    means = {
        "age": rng.uniform(10, 90, n).tolist(),
        "noise": [50.0] * n,
        "mid": rng.uniform(45, 55, n).tolist(),
    }
    root = write_omi(tmp_path / "omi", means, noise={"age": 15, "noise": 20, "mid": 15}, n_ratings=20)
    table = load_ratings(root)
    rel = split_half_reliability(table, n_splits=20, seed=0)
    assert rel["age"] > 0.9 and rel["noise"] < 0.3 and rel["noise"] < rel["mid"] < rel["age"]
    space = rating_space(
        table, RatingTripletConfig(attributes=("age", "noise", "mid"), gender_matched_fraction=0)
    )
    weights = dict(zip(space.attributes, space.weights, strict=True))
    assert weights["noise"] == 0 and weights["age"] == pytest.approx(rel["age"])


def test_gender_matched_candidates_stay_on_one_side(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    gender = [20.0] * 6 + [80.0] * 6  # high = male-looking, as in OMI
    root = write_omi(tmp_path / "omi", {"age": rng.uniform(10, 90, 12).tolist(), "gender": gender})
    config = RatingTripletConfig(
        attributes=("age",), gender_matched_fraction=1.0, n_candidates=50, threshold=0.5, bootstrap=50
    )
    report = build_rating_triplets(root, config)
    assert report.n_candidates == 50 and report.n_matched_candidates == 50
    assert report.n_matched_kept == len(report.triplets) > 0
    for t in report.triplets:
        sides = {int(f) > 6 for f in t.id.split(":")[1:]}
        assert len(sides) == 1
    half = build_rating_triplets(
        root, RatingTripletConfig(attributes=("age",), gender_matched_fraction=0.5, n_candidates=40)
    )
    assert half.n_matched_candidates == 20 and half.n_candidates == 40


def test_rating_types_and_face_subsets(tmp_path: Path) -> None:
    extra = [f"100,age,repeat,{f}" for f in (1, 2, 3)] + ["0,age,fill-in,1"]
    root = write_omi(tmp_path / "omi", SIX, extra=extra)
    default = load_ratings(root)
    assert len(default) == 6 * 3 * 30 + 1  # repeats excluded, fill-in kept
    assert len(load_ratings(root, ("normal", "repeat", "fill-in"))) == 6 * 3 * 30 + 4
    assert load_ratings(root, attributes=("skin", "age")).attributes == ("skin", "age")
    train, test = split_faces(default.face_ids, test_fraction=0.34, seed=0)
    assert len(test) == 2 and set(train) | set(test) == set(default.face_ids) and not set(train) & set(test)
    s = rating_triplets(root, SIX_CONFIG, train)
    assert all(set(t.id.split(":")[1:]) <= set(train) for t in s)
    with pytest.raises(ValueError, match="no ratings"):
        rating_triplets(root, SIX_CONFIG, ["1", "2", "99"])


def test_faces_without_images_are_skipped(tmp_path: Path) -> None:
    root = write_omi(tmp_path / "omi", SIX)
    (root / "images" / "6.jpg").unlink()
    with pytest.warns(DatasetWarning, match="skipped 1 of 6 faces with no image"):
        s = rating_triplets(root, SIX_CONFIG)
    assert all("6" not in t.id.split(":")[1:] for t in s)


def test_split_faces_deterministic() -> None:
    ids = [str(i) for i in range(1, 101)]
    a = split_faces(ids, 0.2, seed=5)
    assert a == split_faces(reversed(ids), 0.2, seed=5)
    assert len(a[1]) == 20 and a != split_faces(ids, 0.2, seed=6)
    assert [len(p) for p in split_faces(["1", "2"], 0.01)] == [1, 1]  # a non-zero fraction holds out one
    with pytest.raises(ValueError):
        split_faces(ids, 1.0)


def test_attribute_table_and_errors(tmp_path: Path) -> None:
    root = write_omi(tmp_path / "omi", SIX)
    table = attribute_table(root)
    assert table.face_ids == ("1", "2", "3", "4", "5", "6") and table.attributes == ("age", "hair", "skin")
    assert table.column("age").tolist() == SIX["age"] and table.row("6") == {
        "age": 90,
        "hair": 80,
        "skin": 70,
    }
    with pytest.raises(DatasetError, match="not found"):
        attribute_table(tmp_path)
    with gzip.open(root / "attribute_ratings.csv.gz", "wt") as f:
        f.write("rating,attribute,rating_type,stimulus\nhigh,age,normal,1\n")
    with pytest.raises(DatasetError, match="line 2: rating 'high'"):
        load_ratings(root)
    with gzip.open(root / "attribute_ratings.csv.gz", "wt") as f:
        f.write("score,attribute,stimulus\n1,age,1\n")
    with pytest.raises(DatasetError, match="bad header"):
        load_ratings(root)
    write_omi(root, SIX)
    with pytest.raises(DatasetError, match="attribute"):
        load_ratings(root, attributes=("age", "gender"))
    with pytest.raises(ValueError):
        RatingTripletConfig(threshold=0.3)


@pytest.mark.shared
@pytest.mark.slow
def test_real_omi_rating_derived_triplets(shared_data: Path) -> None:
    root = shared_data / "omi"
    config = RatingTripletConfig()
    start = time.perf_counter()
    ratings = load_ratings(root, config.rating_types, config.needed_attributes)
    loaded = time.perf_counter() - start
    train_ids, test_ids = split_faces(ratings.face_ids, 0.2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatasetWarning)  # every real face has an image and ratings
        report = build_rating_triplets(root, config, ratings=ratings)
        built = time.perf_counter() - start - loaded
        train = rating_triplets(root, config, train_ids, ratings=ratings)
    elapsed = time.perf_counter() - start
    print(
        f"\nOMI rating-derived triplets (a stand-in for human similarity judgments), "
        f"{len(ratings.face_ids)} faces"
    )
    for attr, rel in report.reliability.items():
        print(f"  {attr:15s} reliability {rel:.3f}  weight {report.weights[attr]:.3f}")
    print(
        f"  kept {len(report.triplets)} / {report.n_candidates} candidates at threshold {config.threshold} "
        f"(gender-matched {report.n_matched_kept} / {report.n_matched_candidates}); "
        f"train faces {len(train_ids)} -> {len(train)} triplets; load {loaded:.1f}s, build {built:.1f}s, "
        f"total {elapsed:.1f}s"
    )
    assert len(ratings.face_ids) == 800 and report.n_candidates == config.n_candidates
    assert 0 < len(report.triplets) < report.n_candidates and elapsed < 60
    assert all(set(t.id.split(":")[1:]) <= set(train_ids) for t in train)
    # Gender direction: high OMI gender ratings are male-looking, so they go with short hair.
    means = attribute_table(root)
    assert np.corrcoef(means.column("gender"), means.column("long-haired"))[0, 1] < -0.5
    assert set(test_ids).isdisjoint(train_ids)
