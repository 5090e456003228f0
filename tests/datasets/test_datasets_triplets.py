"""Tests for perface.datasets.triplets: the Triplet abstraction, D1/D2 and the splits."""

from __future__ import annotations

from pathlib import Path

import pytest

import perface.datasets as ds
from perface.datasets import Triplet, TripletSet


def make(
    tid: str, va: int, vb: int, target: str | None = None, sources: tuple[str, ...] | None = None
) -> Triplet:
    return Triplet(
        tid, Path(f"{tid}_c.jpg"), Path(f"{tid}_a.jpg"), Path(f"{tid}_b.jpg"), va, vb, target, sources
    )


def grid(n_targets: int = 10, n_groups: int = 10) -> TripletSet:
    """SimCelebA-like design: every target crossed with every group of three sources."""
    out = []
    for t in range(n_targets):
        for g in range(n_groups):
            sources = (f"s{3 * g}", f"s{3 * g + 1}", f"s{3 * g + 2}")
            out.append(make(f"t{t:02d}g{g:02d}", 2, 1, f"T{t}", sources))
    return TripletSet(out, "grid")


def test_public_api_is_exported() -> None:
    for name in ds.__all__:
        assert hasattr(ds, name), name


def test_triplet_majority_agreement_and_unanimity() -> None:
    t = make("t1", 1, 2)
    assert t.positive == Path("t1_b.jpg") and t.negative == Path("t1_a.jpg")
    assert t.agreement == pytest.approx(2 / 3) and not t.unanimous and t.n_votes == 3
    u = make("t2", 3, 0)
    assert u.positive == Path("t2_a.jpg") and u.unanimous and u.agreement == 1.0
    tie = make("t3", 2, 2)
    assert tie.tie and tie.positive == Path("t3_a.jpg") and tie.agreement == 0.5


def test_triplet_coerces_paths_and_validates() -> None:
    t = Triplet("x", "r.jpg", "a.jpg", "b.jpg", 1, 0, source_ids=["s1", "s2", "s3"])  # type: ignore[arg-type]
    assert isinstance(t.reference, Path) and t.source_ids == ("s1", "s2", "s3")
    for bad in ({"votes_a": -1}, {"votes_a": 0, "votes_b": 0}, {"weight": float("nan")}, {"votes_a": 1.5}):
        kwargs = {"votes_a": 1, "votes_b": 0, **bad}
        with pytest.raises(ValueError):
            Triplet("x", Path("r"), Path("a"), Path("b"), **kwargs)  # type: ignore[arg-type]


def test_tripletset_sequence_behaviour() -> None:
    s = TripletSet([make("a", 3, 0), make("b", 2, 1), make("c", 0, 3)], "s")
    assert len(s) == 3 and s[1].id == "b" and isinstance(s[1:], TripletSet) and len(s[1:]) == 2
    assert [t.id for t in s] == ["a", "b", "c"]
    assert len(s.image_paths()) == 9
    with pytest.raises(ValueError, match="duplicate"):
        TripletSet([make("a", 1, 0), make("a", 1, 0)])


def test_d1_d2_counts_on_real_head_answers() -> None:
    # Vote counts of the first 20 rows of the real triplet_answers.csv (7 are unanimous).
    answers = [
        "aab",
        "baa",
        "aaa",
        "bab",
        "bbb",
        "aaa",
        "aaa",
        "aaa",
        "aaa",
        "aab",
        "baa",
        "aab",
        "aab",
        "bba",
        "bba",
        "aab",
        "aab",
        "bba",
        "aaa",
        "aab",
    ]
    s = TripletSet([make(f"t{i:04d}", a.count("a"), a.count("b")) for i, a in enumerate(answers)], "head")
    assert len(s.d1()) == 20 and s.d1().name == "head-D1"
    d2 = s.d2()
    assert [t.id for t in d2] == ["t0002", "t0004", "t0005", "t0006", "t0007", "t0008", "t0018"]
    assert TripletSet([make("x", 2, 2), make("y", 2, 1)]).d1().triplets[0].id == "y"


def test_split_random_is_deterministic_and_partitions() -> None:
    s = TripletSet([make(f"t{i:03d}", 2, 1) for i in range(101)], "s")
    parts = s.split_random(seed=3)
    assert list(parts) == ["train", "val", "test"]
    assert [len(p) for p in parts.values()] == [81, 10, 10]
    ids = [t.id for p in parts.values() for t in p]
    assert sorted(ids) == [t.id for t in s]
    assert parts == s.split_random(seed=3)
    assert parts["test"] != s.split_random(seed=4)["test"]
    assert list(s.split_random((0.5, 0.5))) == ["train", "test"]
    with pytest.raises(ValueError):
        s.split_random((0.5, 0.6))


@pytest.mark.parametrize("mode", ["i", "ii", "iii"])
def test_split_by_identity_conditions(mode: str) -> None:
    s = grid()
    parts = s.split_by_identity(mode, seed=1, fraction=0.3, val_fraction=0.2)
    train, val, test = parts["train"], parts["val"], parts["test"]
    assert len(test) > 0 and len(val) > 0 and len(train) > 0
    train_t = {t.target_id for t in train}
    train_s = {x for t in train for x in t.source_ids or ()}
    for part in (val, test):
        for t in part:
            sources = set(t.source_ids or ())
            if mode in ("i", "ii"):
                assert t.target_id not in train_t
            if mode in ("i", "iii"):
                assert sources.isdisjoint(train_s)
            if mode == "ii":
                assert sources <= train_s
            if mode == "iii":
                assert t.target_id in train_t
    # val and test hold out different identities of the relevant kind
    if mode in ("i", "ii"):
        assert {t.target_id for t in val}.isdisjoint({t.target_id for t in test})
    if mode in ("i", "iii"):
        assert {x for t in val for x in t.source_ids or ()}.isdisjoint(
            {x for t in test for x in t.source_ids or ()}
        )
    assert parts == s.split_by_identity(mode, seed=1, fraction=0.3, val_fraction=0.2)
    assert {t.id for t in train}.isdisjoint({t.id for t in test})


def test_split_by_identity_sizes_on_grid() -> None:
    s = grid()
    assert [len(p) for p in s.split_by_identity("ii", fraction=0.2).values()] == [80, 20]
    assert [len(p) for p in s.split_by_identity("iii", fraction=0.2).values()] == [80, 20]
    assert [len(p) for p in s.split_by_identity("[i]", fraction=0.2).values()] == [64, 4]


def test_split_by_identity_needs_ids() -> None:
    s = TripletSet([make("a", 2, 1), make("b", 2, 1, "T1", ("s1", "s2", "s3"))], "x")
    with pytest.raises(ValueError, match="target_id"):
        s.split_by_identity("ii")
    with pytest.raises(ValueError, match="source_ids"):
        TripletSet([make("a", 2, 1, "T1")]).split_by_identity("iii")
    with pytest.raises(ValueError, match="mode"):
        grid().split_by_identity("iv")
