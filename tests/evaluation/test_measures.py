"""Tests for perface.evaluation.measures: triplet accuracy, bootstrap CI, Sec. 4.5 attribute-group metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from perface.evaluation.measures import (
    INTERSECTION_GROUPS,
    TABLE4_ROWS,
    AttributeGroupReport,
    Estimate,
    GroupPrediction,
    TripletReport,
    attribute_group_comparison_markdown,
    attribute_group_report,
    bootstrap_ci,
    classify_attribute_groups,
    format_table,
    make_groups,
    report_from_predictions,
    roc_auc,
    triplet_accuracy,
    triplet_outcomes,
)

# ------------------------------------------------------------------------------ triplet accuracy
POS = [0.9, 0.2, 0.5, 0.1]
NEG = [0.1, 0.3, 0.5, 0.0]  # right, wrong, tie, right


def test_triplet_accuracy_hand_computed_with_ties():
    assert triplet_accuracy(POS, NEG) == pytest.approx(2.5 / 4)
    assert triplet_accuracy(POS, NEG, ties=0.0) == pytest.approx(2 / 4)
    assert triplet_accuracy(POS, NEG, ties=1.0) == pytest.approx(3 / 4)
    np.testing.assert_array_equal(triplet_outcomes(POS, NEG), [1.0, 0.0, 0.5, 1.0])


def test_triplet_accuracy_weights():
    # (1*1 + 2*0 + 1*0.5 + 0*1) / 4
    assert triplet_accuracy(POS, NEG, weights=[1, 2, 1, 0]) == pytest.approx(1.5 / 4)
    # uniform weights == unweighted
    assert triplet_accuracy(POS, NEG, weights=[3, 3, 3, 3]) == pytest.approx(triplet_accuracy(POS, NEG))


@pytest.mark.parametrize(
    "pos,neg,kw",
    [
        ([0.1, 0.2], [0.1], {}),
        ([0.1, float("nan")], [0.1, 0.2], {}),
        ([], [], {}),
        ([0.1, 0.2], [0.0, 0.0], {"weights": [1, -1]}),
        ([0.1, 0.2], [0.0, 0.0], {"weights": [1]}),
        ([[0.1, 0.2], [0.3, 0.4]], [[0.0, 0.0], [0.0, 0.0]], {}),
    ],
)
def test_triplet_accuracy_rejects_bad_input(pos, neg, kw):
    with pytest.raises(ValueError):
        triplet_accuracy(pos, neg, **kw)


def test_bootstrap_ci_contains_value_and_narrows_with_n():
    rng = np.random.default_rng(1)
    widths = []
    for n in (50, 5000):
        outcomes = (rng.random(n) < 0.8).astype(float)
        est = bootstrap_ci(outcomes, n_boot=1000, seed=0)
        assert isinstance(est, Estimate) and est.n == n
        assert est.low <= est.value <= est.high
        widths.append(est.high - est.low)
    assert widths[1] < widths[0] / 4  # ~ 1/sqrt(n): expected ratio 10


def test_bootstrap_ci_pair_input_deterministic_and_degenerate():
    rng = np.random.default_rng(2)
    p, q = rng.random(300), rng.random(300)
    a = bootstrap_ci((p, q), n_boot=500, seed=3)
    b = bootstrap_ci(triplet_outcomes(p, q), n_boot=500, seed=3)
    assert a == b
    assert a.value == pytest.approx(triplet_accuracy(p, q))
    perfect = bootstrap_ci((np.ones(20), np.zeros(20)), n_boot=200)
    assert (perfect.value, perfect.low, perfect.high) == (1.0, 1.0, 1.0)
    w = bootstrap_ci((p, q), n_boot=300, weights=rng.random(300) + 0.1)
    assert w.low <= w.value <= w.high


def test_triplet_report_chance_row_and_markdown():
    rep = TripletReport()
    rng = np.random.default_rng(0)
    rep.add("PerFace", "test[ii]", "D2", rng.random(100) + 0.2, rng.random(100), n_boot=200)
    chance = rep.add_chance("test[ii]", "D2", 100)
    assert chance.accuracy == 0.5 and chance.ci == "—"
    md = rep.to_markdown()
    assert "| PerFace | test[ii] | D2 | 100 |" in md and "| chance |" in md and "95% CI" in md
    d = json.loads(rep.to_json())
    assert d["rows"][1]["accuracy"] == 0.5 and d["rows"][1]["low"] is None


def test_format_table():
    md = format_table(
        [{"a": "x|y", "b": 0.12345, "c": 3}, {"a": "z", "b": float("nan")}],
        [("a", "Name"), ("b", "Val"), ("c", "N")],
    )
    lines = md.splitlines()
    assert lines[0] == "| Name | Val | N |"
    assert lines[1] == "| --- | ---: | ---: |"
    assert lines[2] == "| x\\|y | 0.123 | 3 |"
    assert lines[3] == "| z | — | — |"
    assert format_table([{"k": 1.0}], {"k": "K"}, float_fmt=".1f").splitlines()[-1] == "| 1.0 |"


# ------------------------------------------------------------------------------ make_groups
def _labels(counts: dict[str, int], rng: np.random.Generator) -> list[tuple[str, int]]:
    lab = {
        "young_male": ("male", 1),
        "young_female": ("female", 1),
        "older_male": ("M", -1),
        "older_female": ("F", -1),
    }
    out = [lab[k] for k, c in counts.items() for _ in range(c)]
    return [out[i] for i in rng.permutation(len(out))]


def test_make_groups_sizes_disjoint_balanced():
    counts = {"young_male": 400, "young_female": 500, "older_male": 380, "older_female": 150}
    labels = _labels(counts, np.random.default_rng(0))
    split = make_groups(labels, per_group=100, n_queries_per_group=250, seed=7)
    assert list(split.groups) == list(TABLE4_ROWS)
    inter = [split.groups[k] for k in INTERSECTION_GROUPS]
    assert all(len(g) == 100 for g in inter) and all(len(split.groups[b]) == 200 for b in TABLE4_ROWS[:4])
    all_group = np.concatenate(inter)
    assert len(np.unique(all_group)) == 400
    assert not set(split.queries.tolist()) & set(all_group.tolist())
    assert len(np.unique(split.queries)) == len(split.queries)
    assert set(split.groups["male"].tolist()) == set(split.groups["young_male"].tolist()) | set(
        split.groups["older_male"].tolist()
    )
    # 250 per group where possible; older_female has only 50 left
    got = {k: split.query_groups.count(k) for k in INTERSECTION_GROUPS}
    assert got == {"young_male": 250, "young_female": 250, "older_male": 250, "older_female": 50}
    # group membership matches the labels (CelebA -1 read as "older")
    for k, idx in split.groups.items():
        for i in idx:
            g, y = labels[i]
            assert (k in ("male", "young_male", "older_male")) <= (g in ("male", "M"))
            assert (k in ("older", "older_male", "older_female")) <= (y == -1)
    for i, k in zip(split.queries, split.query_groups, strict=True):
        assert (labels[i][0] in ("male", "M")) == k.endswith("_male")
    bal = make_groups(labels, seed=7, balanced=True)
    assert {bal.query_groups.count(k) for k in INTERSECTION_GROUPS} == {50}
    again = make_groups(labels, seed=7)
    np.testing.assert_array_equal(again.queries, split.queries)
    json.dumps(split.to_dict())
    with pytest.raises(ValueError):
        make_groups(labels, per_group=200)


# ------------------------------------------------------------------------------ classification
def _clustered(n_per: int, d: int, noise: float, rng: np.random.Generator):
    """4 well-separated clusters on the sphere, one per intersection group."""
    centers = np.linalg.qr(rng.normal(size=(d, 4)))[0].T  # orthonormal
    labels, embs = [], []
    for gi, key in enumerate(INTERSECTION_GROUPS):
        x = centers[gi] + noise * rng.normal(size=(n_per, d)) / math.sqrt(d)
        embs.append(x / np.linalg.norm(x, axis=1, keepdims=True))
        labels += [key] * n_per
    return np.concatenate(embs), labels


def test_clustered_embeddings_classified_perfectly():
    rng = np.random.default_rng(5)
    embs, labels = _clustered(350, 64, 0.5, rng)
    split = make_groups(labels, per_group=100, n_queries_per_group=250, seed=1)
    rep = attribute_group_report(
        split.query_embeddings(embs), split.query_groups, split.group_embeddings(embs)
    )
    assert rep.n_queries == 1000
    for task in ("gender", "age", "four_way"):
        assert rep.overall_accuracy[task] >= 0.99
    for r in rep.rows:
        assert r.precision >= 0.99 and r.recall >= 0.99 and r.auc >= 0.99 and r.auc_hard >= 0.99


def test_random_embeddings_near_chance():
    rng = np.random.default_rng(6)
    embs = rng.normal(size=(1400, 32))
    labels = [INTERSECTION_GROUPS[i % 4] for i in range(1400)]
    split = make_groups(labels, per_group=100, seed=2)
    rep = attribute_group_report(
        split.query_embeddings(embs), split.query_groups, split.group_embeddings(embs)
    )
    assert abs(rep.overall_accuracy["gender"] - 0.5) < 0.08
    assert abs(rep.overall_accuracy["age"] - 0.5) < 0.08
    assert abs(rep.overall_accuracy["four_way"] - 0.25) < 0.07
    assert all(abs(r.auc - 0.5) < 0.1 for r in rep.rows)


def _prediction(task: str, groups: tuple[str, ...], pred: list[int]) -> GroupPrediction:
    """Statistics whose argmin is ``pred`` (0 for the predicted group, 1 elsewhere)."""
    s = np.ones((len(pred), len(groups)))
    s[np.arange(len(pred)), pred] = 0.0
    return GroupPrediction(task, groups, s, np.asarray(pred))


def test_precision_recall_six_query_example():
    # truth: 3 male, 3 female; young, young, old, young, old, old
    labels = [("m", 1), ("m", 1), ("m", 0), ("f", 1), ("f", 0), ("f", 0)]
    preds = {
        "gender": _prediction("gender", ("male", "female"), [0, 0, 1, 1, 1, 0]),
        "age": _prediction("age", ("young", "older"), [0, 0, 0, 0, 1, 1]),
        # true four-way: YM YM OM YF OF OF ; predicted YM YF OM YF OF OM
        "four_way": _prediction("four_way", INTERSECTION_GROUPS, [0, 1, 2, 1, 3, 2]),
    }
    rep = report_from_predictions(preds, labels)
    assert [r.group for r in rep.rows] == list(TABLE4_ROWS)
    m, f = rep.row("male"), rep.row("female")
    assert (m.precision, m.recall) == pytest.approx((2 / 3, 2 / 3))
    assert (f.precision, f.recall) == pytest.approx((2 / 3, 2 / 3))
    assert m.accuracy == f.accuracy == pytest.approx(4 / 6)
    assert m.auc == pytest.approx(2 / 3) and m.auc_hard == pytest.approx(2 / 3)
    y, o = rep.row("young"), rep.row("older")
    assert (y.precision, y.recall) == pytest.approx((3 / 4, 1.0))
    assert (o.precision, o.recall) == pytest.approx((1.0, 2 / 3))
    assert y.accuracy == pytest.approx(5 / 6) and y.auc_hard == pytest.approx((1 + 2 / 3) / 2)
    ym, yf = rep.row("young_male"), rep.row("young_female")
    om, of = rep.row("older_male"), rep.row("older_female")
    assert (ym.precision, ym.recall, ym.accuracy) == pytest.approx((1.0, 0.5, 5 / 6))
    assert (yf.precision, yf.recall, yf.accuracy) == pytest.approx((0.5, 1.0, 5 / 6))
    assert (om.precision, om.recall, om.accuracy) == pytest.approx((0.5, 1.0, 5 / 6))
    assert (of.precision, of.recall, of.accuracy) == pytest.approx((1.0, 0.5, 5 / 6))
    assert rep.overall_accuracy["four_way"] == pytest.approx(4 / 6)
    assert ym.auc_hard == pytest.approx((0.5 + 1.0) / 2)


def test_paper_table4_acc_auc_follow_from_precision_recall():
    """Hard-prediction AUC ((TPR+TNR)/2) reproduces Table 4 "Pre" 4-way and gender numbers."""
    conf = np.array([[203, 0, 0, 47], [87, 163, 0, 0], [1, 39, 197, 13], [0, 0, 49, 201]])  # true x pred
    truth, pred = [], []
    for i in range(4):
        for j in range(4):
            truth += [INTERSECTION_GROUPS[i]] * conf[i, j]
            pred += [j] * conf[i, j]
    gender = [0 if INTERSECTION_GROUPS[p].endswith("_male") else 1 for p in pred]
    preds = {
        "four_way": _prediction("four_way", INTERSECTION_GROUPS, pred),
        "gender": _prediction("gender", ("male", "female"), gender),
    }
    rep = report_from_predictions(preds, truth, auc_mode="hard")
    paper = {  # P, R, Acc, AUC
        "young_male": (0.698, 0.812, 0.865, 0.847),
        "young_female": (0.807, 0.652, 0.874, 0.800),
        "older_male": (0.801, 0.788, 0.898, 0.861),
        "older_female": (0.770, 0.804, 0.891, 0.862),
    }
    for g, vals in paper.items():
        r = rep.row(g)
        assert (r.precision, r.recall, r.accuracy, r.auc_hard) == pytest.approx(vals, abs=1.5e-3)
    # a balanced binary pair has Acc == hard AUC, as every binary row of Table 4 shows
    m = rep.row("male")
    assert m.accuracy == pytest.approx(m.auc_hard)
    assert "| Young∩Male | 0.698 | 0.812 | 0.865 | 0.847 |" in rep.to_markdown()


def test_report_rendering_and_json():
    rng = np.random.default_rng(8)
    embs, labels = _clustered(130, 16, 1.5, rng)
    split = make_groups(labels, per_group=100, n_queries_per_group=30, seed=0)
    rep = attribute_group_report(
        split.query_embeddings(embs), split.query_groups, split.group_embeddings(embs)
    )
    assert isinstance(rep, AttributeGroupReport)
    md = rep.to_markdown()
    for name in (
        "Male",
        "Female",
        "Young",
        "Older",
        "Young∩Male",
        "Young∩Female",
        "Older∩Male",
        "Older∩Female",
    ):
        assert f"| {name} |" in md
    assert md.splitlines()[0] == "| Category | P | R | Acc | AUC |"
    assert len([ln for ln in md.splitlines() if ln.startswith("| ") and "---" not in ln]) == 9
    d = json.loads(json.dumps(rep.to_dict()))
    assert [r["group"] for r in d["rows"]] == list(TABLE4_ROWS)
    both = attribute_group_comparison_markdown({"Pre": rep, "Post": rep})
    assert "Pre AUC" in both and "Post P" in both and both.count("\n") == 9


def test_roc_auc_matches_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(9)
    y = rng.random(200) < 0.4
    s = np.round(rng.normal(size=200) + y, 1)  # rounding creates ties
    assert roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s))
    assert math.isnan(roc_auc(np.ones(3, bool), [1, 2, 3]))


def test_classification_shapes_on_many_queries():
    rng = np.random.default_rng(10)
    ge = {k: rng.normal(size=(100, 512)).astype(np.float32) for k in INTERSECTION_GROUPS}
    q = rng.normal(size=(4000, 512)).astype(np.float32)
    preds = classify_attribute_groups(q, ge)
    assert preds["four_way"].statistics.shape == (4000, 4)
    assert preds["gender"].groups == ("male", "female")
