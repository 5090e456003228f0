"""Triplet building: the plan (gender-matched disjoint source groups crossed with targets), catch trials,
labels, and a real build with the project's swapper on One Million Impressions faces."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perface.annotation.build import BuildConfig, plan_catch, plan_triplets, read_gender_labels
from perface.face.io import InputError, PerFaceError

OMI = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "omi"


def _people(prefix: str, n_f: int, n_m: int) -> list[tuple[str, str]]:
    return [(f"{prefix}f{i}", "female") for i in range(n_f)] + [(f"{prefix}m{i}", "male") for i in range(n_m)]


def test_plan_matches_gender_and_crosses_groups_with_targets() -> None:
    targets, sources = _people("t", 2, 2), _people("s", 7, 9)
    gender = dict(targets + sources)
    plan = plan_triplets(targets, sources, BuildConfig(seed=3))
    assert len(plan) == 2 * 2 + 2 * 3  # 2 female groups (7 // 3) and 3 male groups per target of that gender
    for target, group in plan:
        assert len(set(group)) == 3 and {gender[s] for s in group} == {gender[target]}
    groups = {frozenset(g) for _, g in plan}
    assert sum(len(g) for g in groups) == len(set().union(*groups)), "source groups are disjoint"
    assert Counter(frozenset(g) for _, g in plan).most_common(1)[0][1] == 2  # each group meets every target
    assert plan == plan_triplets(targets, sources, BuildConfig(seed=3))  # seeded


def test_plan_per_target_and_cross_gender_share() -> None:
    targets, sources = _people("t", 1, 0), _people("s", 12, 12)
    plan = plan_triplets(targets, sources, BuildConfig(per_target=4, cross_gender_share=0.5))
    genders = Counter(dict(sources)[g[0]] for _, g in plan)
    assert len(plan) == 4 and genders == {"female": 2, "male": 2}
    with pytest.raises(PerFaceError):
        BuildConfig(cross_gender_share=1.5)


def test_plan_catch() -> None:
    catches = plan_catch(40, 0.1, seed=1)
    assert len(catches) == 4 and len({i for i, _, _ in catches}) == 4
    assert all(s in "ab" and o in "ab" for _, s, o in catches)
    assert plan_catch(3, 0.1) and not plan_catch(10, 0.0)


def test_gender_labels(tmp_path: Path) -> None:
    good = tmp_path / "labels.csv"
    good.write_text("file,gender\nalice.jpg,F\nbob,male\n")
    assert read_gender_labels(good) == {"alice.jpg": "female", "alice": "female", "bob": "male"}
    bad = tmp_path / "bad.csv"
    bad.write_text("file,gender\nalice.jpg,unknown\n")
    with pytest.raises(InputError, match="line 2"):
        read_gender_labels(bad)


@pytest.mark.shared
@pytest.mark.slow
def test_build_with_the_swapper_on_omi_faces(tmp_path: Path) -> None:
    """4 targets x source groups from 9 sources, swapped by the classic swapper: 224 px triplets and catch trials."""
    if not (OMI / "attribute_means.csv").is_file():
        pytest.skip("../shared/data/omi is not available")
    from perface.annotation.build import create_and_build
    from perface.annotation.db import TripletRow, transaction

    rows = list(csv.DictReader((OMI / "attribute_means.csv").open()))
    men = [r["stimulus"] for r in rows if float(r["gender"]) > 70][:7]
    (tmp_path / "t").mkdir()
    (tmp_path / "s").mkdir()
    for i, stim in enumerate(men):
        (tmp_path / ("t" if i < 1 else "s") / f"{stim}.jpg").symlink_to(OMI / "images" / f"{stim}.jpg")
    labels = tmp_path / "labels.csv"
    labels.write_text("file,gender\n" + "".join(f"{s},male\n" for s in men))
    project, admin, rep = create_and_build(tmp_path / "proj", tmp_path / "t", tmp_path / "s",
                                           cfg=BuildConfig(catch_share=0.5), labels=labels)
    assert (rep.n_targets, rep.n_sources, rep.n_real, rep.n_catch) == (1, 6, 2, 1), rep.skipped
    with transaction(project.engine) as s:
        triplets = s.query(TripletRow).all()
    catch = next(t for t in triplets if t.kind == "catch")
    for t in triplets:
        for side in "abc":
            with Image.open(project.image_path(t.code, side)) as im:
                assert im.size == (224, 224) and not im.info.get("exif")
    c, same, other = (np.asarray(Image.open(project.image_path(catch.code, side)), dtype=float)
                      for side in ("c", catch.catch_answer, "ab".replace(catch.catch_answer, "")))
    assert np.abs(same[:, ::-1] - c).mean() < 3 < np.abs(other - c).mean()  # the copy is C mirrored
    real = [t for t in triplets if t.kind == "real"]
    assert {t.target for t in real} == {men[0]} and len({t.source_a for t in real}) == 2
    assert len(admin) >= 30


def test_bad_folders_leave_nothing(tmp_path: Path) -> None:
    from perface.annotation.build import create_and_build

    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        create_and_build(tmp_path / "proj", tmp_path / "empty", tmp_path / "empty")
    assert not (tmp_path / "proj").exists()
