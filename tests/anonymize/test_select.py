"""perface.anonymize.select: the paper's two steps on a tiny synthetic gallery whose geometry we control."""

from __future__ import annotations

import numpy as np
import pytest

from perface.anonymize.gallery import Donor, Gallery
from perface.anonymize.select import DonorSelector, SelectConfig

CENTRES = {
    ("male", "young"): [1, 0, 0, 0],
    ("male", "older"): [0, 1, 0, 0],
    ("female", "young"): [0, 0, 1, 0],
    ("female", "older"): [0, 0, 0, 1],
}


_CROP = Donor.encode_crop(np.zeros((8, 8, 3), np.uint8), "png")


def _donor(donor_id: str, gender: str, age: float, age_group: str, perceptual, rng: np.random.Generator) -> Donor:
    return Donor(id=donor_id, source="synthetic", gender=gender, age=float(age), age_group=age_group,
                 attribute_source="label", perceptual=np.asarray(perceptual, np.float32),
                 identity=rng.normal(size=128).astype(np.float32), crop=_CROP,
                 landmarks=np.zeros((68, 2), np.float32))


def _open(path, donors):
    with Gallery.building(path, "test-model", 4) as gal:
        gal.add(donors)
    return Gallery.open(path, "test-model")


@pytest.fixture
def gallery(tmp_path):
    rng = np.random.default_rng(0)
    donors = [_donor(f"{g}-{a}-{i}", g, 25 if a == "young" else 60, a,
                     np.array(c, np.float32) + rng.normal(0, 0.25, 4).astype(np.float32), rng)
              for (g, a), c in CENTRES.items() for i in range(10)]
    g = _open(tmp_path / "g.sqlite", donors)
    yield g
    g.close()


def _cos(gallery, query, donor_id):
    v = gallery.get(donor_id).perceptual
    return float(query @ v / np.linalg.norm(query) / np.linalg.norm(v))


@pytest.mark.parametrize("group,key", [(("female", "older"), "older_female"), (("male", "young"), "young_male")])
def test_step1_picks_the_most_similar_group(gallery, group, key):
    q = np.array(CENTRES[group], np.float32) + 0.05
    chosen, stats = DonorSelector(gallery).choose_group(q)
    assert chosen == key
    assert stats[key] == min(stats.values())


def test_step2_paper_takes_low_similarity_donors_of_that_group(gallery):
    q = np.array(CENTRES[("female", "young")], np.float32)
    sel = DonorSelector(gallery, SelectConfig(strategy="paper", low_fraction=0.3, min_pool=3)).select(q)
    assert sel.group == "young_female"
    assert all(c.startswith("female-young") for c in sel.candidates)
    group_sims = sorted(_cos(gallery, q, f"female-young-{i}") for i in range(10))
    assert max(sel.similarities) <= group_sims[2] + 1e-6  # only the 3 least similar
    assert len(sel.candidates) == 3


def test_farthest_is_sorted_ascending(gallery):
    q = np.array(CENTRES[("male", "older")], np.float32)
    sel = DonorSelector(gallery, SelectConfig(strategy="farthest")).select(q)
    assert sel.similarities == sorted(sel.similarities)
    assert len(sel.candidates) == 10


def test_band_and_exclude(gallery):
    q = np.array(CENTRES[("male", "older")], np.float32)
    sims = {f"male-older-{i}": _cos(gallery, q, f"male-older-{i}") for i in range(10)}
    lo, hi = sorted(sims.values())[3], sorted(sims.values())[6]
    sel = DonorSelector(gallery, SelectConfig(strategy="band", band=(lo, hi))).select(q, exclude_ids={"male-older-0"})
    inside = [c for c, s in zip(sel.candidates, sel.similarities, strict=True) if lo <= s <= hi]
    assert sel.candidates[: len(inside)] == inside and len(inside) >= 3
    assert "male-older-0" not in sel.candidates


def test_seed_makes_paper_choice_reproducible(gallery):
    q = np.array(CENTRES[("male", "young")], np.float32)
    a = DonorSelector(gallery, SelectConfig(seed=3)).select(q).candidates
    b = DonorSelector(gallery, SelectConfig(seed=3)).select(q).candidates
    assert a == b


def test_config_validation():
    with pytest.raises(ValueError):
        SelectConfig(strategy="band")
    with pytest.raises(ValueError):
        SelectConfig(strategy="band", band=(0.5, 0.2))
    with pytest.raises(ValueError):
        SelectConfig(strategy="nearest")  # type: ignore[arg-type]


def test_hybrid_group_uses_a_confident_predicted_gender(gallery):
    q = np.array(CENTRES[("female", "young")], np.float32)  # looks like a young woman to the metric
    metric = DonorSelector(gallery, SelectConfig(group_by="metric"))
    hybrid = DonorSelector(gallery, SelectConfig(group_by="hybrid", gender_confidence=0.9))
    assert metric.choose_group(q, ("male", 0.99, "young"))[0] == "young_female"
    assert hybrid.choose_group(q, ("male", 0.99, "young"))[0] == "young_male"
    assert hybrid.choose_group(q, ("male", 0.6, "young"))[0] == "young_female"  # not confident: metric decides
    pred = DonorSelector(gallery, SelectConfig(group_by="predicted"))
    assert pred.choose_group(q, ("male", 0.6, "older"))[0] == "older_male"


@pytest.fixture
def aged_gallery(tmp_path):
    """young_female donors: toddlers far from the query, adults near it, ages known."""
    spec = [(2, [0, 0, 0.2, 1]), (4, [0, 0, 0.3, 1]), (6, [0, 0, 0.25, 1])]
    spec += [(24 + i, [0, 0, 1, 0.1 * i]) for i in range(8)]
    rng = np.random.default_rng(1)
    donors = [_donor(f"d{i}-age{age}", "female", age, "young", v, rng) for i, (age, v) in enumerate(spec)]
    donors += [_donor("m", "male", 30, "young", [1, 0, 0, 0], rng),
               _donor("m2", "male", 31, "young", [1, 0.1, 0, 0], rng)]
    g = _open(tmp_path / "a.sqlite", donors)
    yield g
    g.close()


def _age(donor_id: str) -> int:
    return int(donor_id.split("age")[1])


def test_step2_age_window_keeps_toddlers_away_from_adults(aged_gallery):
    q = np.array([0, 0, 1, 0], np.float32)
    cfg = SelectConfig(strategy="paper", low_fraction=0.2, min_pool=3, max_age_gap=15.0)
    plain = DonorSelector(aged_gallery, cfg).select(q)  # no age known: the paper's rule alone
    assert min(_age(c) for c in plain.candidates) < 10  # the least similar are the toddlers
    sel = DonorSelector(aged_gallery, cfg).select(q, age=30.0)
    assert sel.group == "young_female"
    assert len(sel.candidates) == 11 and all(abs(_age(c) - 30) <= 15 for c in sel.candidates[:8])
    first = set(sel.candidates[:3])  # the random pick comes from the 3 least similar adults
    assert first == {"d10-age31", "d9-age30", "d8-age29"}
    assert sel.similarities[3:8] == sorted(sel.similarities[3:8])  # then the rest of the window, least similar first
    assert [_age(c) for c in sel.candidates[8:]] == [6, 4, 2]  # outside the window: last resort, closest in age first
    child = DonorSelector(aged_gallery, cfg).select(np.array([0, 0, 0.25, 1], np.float32), age=4.0)
    assert {_age(c) for c in child.candidates[:3]} == {2, 4, 6} and not child.notes


def test_step2_age_window_too_small_takes_the_closest_in_age(aged_gallery):
    q = np.array([0, 0, 1, 0], np.float32)
    cfg = SelectConfig(strategy="farthest", min_pool=4, max_age_gap=1.0)
    sel = DonorSelector(aged_gallery, cfg).select(q, age=12.0)
    assert sorted(_age(c) for c in sel.candidates[:4]) == [2, 4, 6, 24]  # 10, 8, 6 and 12 years off
    assert [_age(c) for c in sel.candidates[4:]] == [25, 26, 27, 28, 29, 30, 31]
    assert sel.notes and "closest in age" in sel.notes[0]
    off = DonorSelector(aged_gallery, SelectConfig(strategy="farthest", max_age_gap=None)).select(q, age=12.0)
    assert len(off.candidates) == 11
    with pytest.raises(ValueError, match="max_age_gap"):
        SelectConfig(max_age_gap=-1)
