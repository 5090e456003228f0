"""Assignment: K votes per triplet, fewest first, each triplet once per annotator, catch trials, undo, votes."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from perface.annotation.assign import VoteRefused, next_item, record_vote, undo_last
from perface.annotation.db import TripletRow, Vote, transaction
from perface.annotation.project import AnnotationSettings, open_project

from .conftest import annotator_id, answer_all, code_of, make_project


def _votes(project) -> Counter:
    with transaction(project.engine) as s:
        return Counter(code for (code,) in s.execute(
            select(TripletRow.code).join(Vote, Vote.triplet_id == TripletRow.id)).all())


def test_exactly_k_votes_each_seen_once_fewest_first(project) -> None:
    p, _ = project
    for name in ("ann1", "ann2", "ann3", "ann4"):
        p.invite(name)
    seen = {}
    for name in ("ann1", "ann2", "ann3", "ann4"):
        seen[name] = answer_all(p, annotator_id(p, name), lambda code: "a")
        assert len(seen[name]) == len(set(seen[name])), "an annotator saw a triplet twice"
    counts = _votes(p)
    real = {c: n for c, n in counts.items() if c.startswith("t")}
    assert len(real) == 12 and set(real.values()) == {3}, "every real triplet gets exactly K = 3 votes"
    # fewest first: the first annotator answered every triplet once before anyone needed a second vote
    assert sum(c.startswith("t") for c in seen["ann1"]) == 12
    assert sum(c.startswith("t") for c in seen["ann4"]) == 0  # nothing left for a fourth annotator


def test_catch_trials_mixed_in_at_the_configured_share(project) -> None:
    p, _ = project
    p.invite("ann1")
    seen = answer_all(p, annotator_id(p, "ann1"), lambda code: "a")
    # share 0.2: the 5th and 10th items are catch trials (2 exist), the first item never is
    assert [i for i, c in enumerate(seen) if c.startswith("c")] == [4, 9]


def test_undo_reopens_the_last_triplet_once(project) -> None:
    p, _ = project
    p.invite("ann1")
    me = annotator_id(p, "ann1")
    first = next_item(p, me)
    record_vote(p, me, first.assignment_id, "a", 900)
    second = next_item(p, me)
    assert second.can_undo and second.assignment_id != first.assignment_id
    assert undo_last(p, me)
    again = next_item(p, me)
    assert again.assignment_id == first.assignment_id and not again.can_undo
    assert not undo_last(p, me), "only the last answer can be undone"
    assert sum(_votes(p).values()) == 0
    record_vote(p, me, again.assignment_id, "b", 800)
    with transaction(p.engine) as s:
        assert s.scalar(select(Vote.answer)) == "b"


def test_retry_is_not_counted_twice_and_changes_are_refused(project) -> None:
    p, _ = project
    p.invite("ann1")
    p.invite("ann2")
    me, other = annotator_id(p, "ann1"), annotator_id(p, "ann2")
    item = next_item(p, me)
    assert record_vote(p, me, item.assignment_id, "a", 1000) is True
    assert record_vote(p, me, item.assignment_id, "a", 1000) is False  # the browser retried
    with pytest.raises(VoteRefused) as e:
        record_vote(p, me, item.assignment_id, "b", 1000)
    assert e.value.status == 409
    with pytest.raises(VoteRefused) as e:  # not assigned to ann2
        record_vote(p, other, item.assignment_id, "a", 1000)
    assert e.value.status == 403
    with pytest.raises(VoteRefused):
        record_vote(p, me, next_item(p, me).assignment_id, "c", 1000)
    assert sum(_votes(p).values()) == 1


def test_restart_keeps_the_open_triplet(project, tmp_path) -> None:
    p, _ = project
    p.invite("ann1")
    me = annotator_id(p, "ann1")
    item = next_item(p, me)
    p.engine.dispose()
    reopened = open_project(p.root)
    assert next_item(reopened, me).assignment_id == item.assignment_id


def test_flagged_annotators_votes_are_replaced(tmp_path) -> None:
    p, _ = make_project(tmp_path / "p", n_real=4, n_catch=1, settings=AnnotationSettings(votes_per_triplet=1,
                                                                                        catch_share=0.25))
    p.invite("careless")
    p.invite("careful")
    bad = answer_all(p, annotator_id(p, "careless"), lambda code: "b")  # fails the catch trial (answer 'a')
    assert any(c.startswith("c") for c in bad)
    good = answer_all(p, annotator_id(p, "careful"), lambda code: "a")
    assert sorted(c for c in good if c.startswith("t")) == [f"t{i:04d}" for i in range(4)]


def test_agreement_sampler_completes_agreeing_triplets_first(tmp_path) -> None:
    p, _ = make_project(tmp_path / "p", n_real=2, n_catch=0,
                        settings=AnnotationSettings(catch_share=0, sampler="agreement"))
    for name in ("x", "y", "z"):
        p.invite(name)
    x, y, z = (annotator_id(p, n) for n in ("x", "y", "z"))
    answer_all(p, x, lambda code: "a")
    answer_all(p, y, lambda code: "a" if code == "t0000" else "b")  # t0001 now contested, t0000 agreeing
    item = next_item(p, z)
    assert code_of(p, item.assignment_id) == "t0000"
