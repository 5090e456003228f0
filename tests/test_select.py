"""perface.select: the paper's two steps on a tiny synthetic gallery whose geometry we control."""

from __future__ import annotations

import numpy as np
import pytest

from perface.gallery import Donor, Gallery
from perface.select import DonorSelector, SelectConfig

CENTRES = {
    ("male", "young"): [1, 0, 0, 0],
    ("male", "older"): [0, 1, 0, 0],
    ("female", "young"): [0, 0, 1, 0],
    ("female", "older"): [0, 0, 0, 1],
}


@pytest.fixture
def gallery(tmp_path):
    rng = np.random.default_rng(0)
    crop = Donor.encode_crop(np.zeros((8, 8, 3), np.uint8), "png")
    donors = []
    for (g, a), c in CENTRES.items():
        for i in range(10):
            v = np.array(c, np.float32) + rng.normal(0, 0.25, 4).astype(np.float32)
            donors.append(Donor(id=f"{g}-{a}-{i}", source="synthetic", gender=g, age=25 if a == "young" else 60,
                                age_group=a, attribute_source="label", perceptual=v,
                                identity=rng.normal(size=128).astype(np.float32), crop=crop,
                                landmarks=np.zeros((68, 2), np.float32)))
    with Gallery.building(tmp_path / "g.sqlite", "test-model", 4) as gal:
        gal.add(donors)
    g = Gallery.open(tmp_path / "g.sqlite", "test-model")
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
