"""Quality control: catch trials flag annotators, flagged votes are left out, agreement figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perface.annotation.db import transaction
from perface.annotation.project import AnnotationSettings
from perface.annotation.quality import flagged_ids, is_flagged, krippendorff_alpha, summarize, valid_votes

from .conftest import annotator_id, answer_all, make_project


def test_threshold() -> None:
    assert not is_flagged(0, 0, 1.0)  # no catch trial answered yet
    assert is_flagged(3, 4, 1.0) and not is_flagged(4, 4, 1.0)
    assert not is_flagged(3, 4, 0.75) and is_flagged(2, 4, 0.75)


def test_careless_annotator_is_flagged_and_left_out(tmp_path) -> None:
    p, _ = make_project(tmp_path / "p", n_real=6, n_catch=2, settings=AnnotationSettings(catch_share=0.25))
    for name in ("ann1", "ann2", "ann3", "careless"):
        p.invite(name)
    careless = answer_all(p, annotator_id(p, "careless"), lambda code: "b")
    assert sum(c.startswith("t") for c in careless) >= 3
    for name in ("ann1", "ann2", "ann3"):
        answer_all(p, annotator_id(p, name), lambda code: "a")
    s = summarize(p)
    flagged = {a.name for a in s.annotators if a.flagged}
    assert flagged == {"careless"}
    bad = annotator_id(p, "careless")
    with transaction(p.engine) as sess:
        valid = valid_votes(sess, p.settings)
        assert flagged_ids(sess, p.settings) == {bad}
    assert all(a != bad for vs in valid.values() for a, _ in vs)
    assert s.complete == 6 and s.unanimity_rate == 1.0 and s.histogram == {3: 6}
    careful = next(a for a in s.annotators if a.name == "ann1")
    assert careful.catch_accuracy == 1.0 and careful.median_rt_ms == 1500


def test_alpha_matches_the_library_and_its_limits() -> None:
    import krippendorff

    votes = {1: [(1, "a"), (2, "a"), (3, "b")], 2: [(1, "b"), (2, "b"), (3, "b")], 3: [(1, "a"), (3, "a")]}
    data = np.array([[1, 0, 1], [1, 0, np.nan], [0, 0, 1]], dtype=float)
    assert krippendorff_alpha(votes) == pytest.approx(krippendorff.alpha(reliability_data=data,
                                                                         level_of_measurement="nominal"))
    perfect = {1: [(1, "a"), (2, "a")], 2: [(1, "b"), (2, "b")]}
    assert math.isclose(krippendorff_alpha(perfect), 1.0)
    assert krippendorff_alpha({1: [(1, "a")]}) is None  # one annotator: not computable
