"""perface.metric.groups: the step-1 statistic by hand, and the vectorised version against a direct computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perface.metric.groups import BROAD_GROUPS, INTERSECTION_GROUPS, group_distance, group_statistics


def test_ci_upper_statistic_hand_computation():
    q = np.array([1.0, 0.0, 0.0])
    g = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [2.0, 2.0, 0.0]])  # d = 0, 1, 1 - 1/sqrt(2)
    d = np.array([0.0, 1.0, 1 - 1 / math.sqrt(2)])
    t975_df2 = 4.302652729911275  # t_{0.975, 2}
    expected = d.mean() + t975_df2 * d.std(ddof=1) / math.sqrt(3)
    assert group_distance(q, g) == pytest.approx(expected, rel=1e-9)
    assert group_distance(q, g, "mean") == pytest.approx(d.mean())
    assert group_distance(q, g, "quantile95") == pytest.approx(np.quantile(d, 0.95))
    with pytest.raises(ValueError):
        group_distance(q, g, "median")  # type: ignore[arg-type]


@pytest.mark.parametrize("statistic", ["ci_upper", "mean", "quantile95"])
def test_group_statistics_matches_direct_computation(statistic):
    rng = np.random.default_rng(4)
    ge = {k: rng.normal(size=(7 + i, 16)) for i, k in enumerate(INTERSECTION_GROUPS)}
    qs = rng.normal(size=(5, 16))
    names, s = group_statistics(qs, ge, statistic, chunk=2)  # chunking and derived broad groups
    assert set(names) == set(BROAD_GROUPS + INTERSECTION_GROUPS) and s.shape == (5, 8)
    full = {**ge, "male": np.concatenate([ge["young_male"], ge["older_male"]])}
    for name in ("male", "older_female"):
        j = names.index(name)
        for i in range(5):
            assert s[i, j] == pytest.approx(group_distance(qs[i], full[name], statistic), rel=1e-9)
    # explicit numpy reference for the broad group
    qn = qs / np.linalg.norm(qs, axis=1, keepdims=True)
    gn = full["male"] / np.linalg.norm(full["male"], axis=1, keepdims=True)
    d = 1 - qn @ gn.T
    ref = {
        "mean": d.mean(1),
        "quantile95": np.quantile(d, 0.95, axis=1),
        "ci_upper": d.mean(1) + 2.131449545559776 * d.std(1, ddof=1) / math.sqrt(16),  # t_{.975,15}
    }[statistic]
    np.testing.assert_allclose(s[:, names.index("male")], ref, rtol=1e-9)


def test_student_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    from perface.metric.groups import student_t_quantile

    for dof in (1, 2, 3, 7, 29, 30, 120, 999, 100000):
        assert student_t_quantile(0.975, dof) == pytest.approx(float(stats.t.ppf(0.975, dof)), rel=1e-10)
    with pytest.raises(ValueError):
        student_t_quantile(0.3, 5)
