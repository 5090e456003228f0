"""The paper's step-1 group statistic: how far a face is from a group of faces (Sec. 4.5, step 1).

A query's distance to a group is a statistic of d = 1 - cos over the group's images, by default the upper
limit of the 95% confidence interval of the mean distance (``mean + t_{0.975, n-1} * sd / sqrt(n)``, sd with
ddof=1): our reading of the paper's "upper limit of the 95% confidence interval of distances". The
anonymizer's step 1 assigns a face to the group with the lowest statistic; the evaluation's Sec. 4.5
tables (:mod:`perface.evaluation.measures`) score the same rule. Pure numpy (and a pure-Python t quantile).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

__all__ = [
    "BROAD_GROUPS",
    "BROAD_MEMBERS",
    "INTERSECTION_GROUPS",
    "Statistic",
    "expand_groups",
    "group_distance",
    "group_statistics",
]

Statistic = Literal["ci_upper", "mean", "quantile95"]

INTERSECTION_GROUPS: tuple[str, ...] = ("young_male", "young_female", "older_male", "older_female")
BROAD_GROUPS: tuple[str, ...] = ("male", "female", "young", "older")
#: each broad group is the union of two intersection groups (in this order when concatenating)
BROAD_MEMBERS: dict[str, tuple[str, str]] = {
    "male": ("young_male", "older_male"),
    "female": ("young_female", "older_female"),
    "young": ("young_male", "young_female"),
    "older": ("older_male", "older_female"),
}

_T975_CACHE: dict[int, float] = {}


# --------------------------------------------------------------------------------------------------
# Distances from queries to groups
# --------------------------------------------------------------------------------------------------
def _l2n(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows; float32 input stays float32 (2x faster matmul, ample precision for cosines)."""
    x = np.asarray(x)
    x = x.astype(np.float32 if x.dtype == np.float32 else np.float64, copy=False)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _t975(dof: int) -> float:
    if dof not in _T975_CACHE:
        _T975_CACHE[dof] = student_t_quantile(0.975, dof)
    return _T975_CACHE[dof]


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) by its continued fraction (modified Lentz), to ~1e-15."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast below this point; use the symmetry above it
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-16:
            break
    return front * f


def student_t_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t with ``dof`` degrees of freedom, to ~1e-12.

    Why not scipy: ``scipy.stats`` takes about a second to import, paid by every anonymization run."""
    if not 0.5 < p < 1.0 or dof < 1:
        raise ValueError(f"need 0.5 < p < 1 and dof >= 1, got p={p}, dof={dof}")
    tail = 1.0 - p

    def upper(t: float) -> float:  # P(T > t) for t >= 0
        return 0.5 * _betainc(dof / 2.0, 0.5, dof / (dof + t * t))

    lo, hi = 0.0, 1.0
    while upper(hi) > tail:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):  # bisection: upper() is monotone, and the iteration count is no concern (cached)
        mid = 0.5 * (lo + hi)
        if upper(mid) > tail:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def _check_statistic(statistic: str, n: int) -> None:
    if statistic not in ("ci_upper", "mean", "quantile95"):
        raise ValueError(f"unknown statistic {statistic!r}; use 'ci_upper', 'mean' or 'quantile95'")
    if n < 1 or (statistic == "ci_upper" and n < 2):
        raise ValueError(
            f"statistic {statistic!r} needs at least {2 if statistic == 'ci_upper' else 1} images"
        )


Moments = tuple[int, np.ndarray, np.ndarray]  # (n, per-query mean of d, per-query sum of squared deviations)


def _moments(dist: np.ndarray) -> Moments:
    """Two-pass (numerically stable) mean and M2 of each row of a distance matrix."""
    mean = dist.mean(axis=1, dtype=np.float64)
    m2 = np.square(dist - mean[:, None]).sum(axis=1)
    return dist.shape[1], mean, m2


def _merge_moments(a: Moments, b: Moments) -> Moments:
    """Moments of the union of two groups (Chan et al. parallel update), without re-reading distances."""
    na, ma, qa = a
    nb, mb, qb = b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * (nb / n), qa + qb + np.square(delta) * (na * nb / n)


def _from_moments(mom: Moments, statistic: Statistic) -> np.ndarray:
    """mean, or mean + t_{0.975,n-1} * sd / sqrt(n) (sd with ddof=1), from a group's moments."""
    n, mean, m2 = mom
    _check_statistic(statistic, n)
    if statistic == "mean":
        return mean
    return mean + _t975(n - 1) * np.sqrt(m2 / (n - 1)) / math.sqrt(n)


def _quantile95(dist: np.ndarray) -> np.ndarray:
    """Row-wise 95th percentile (numpy's default linear interpolation) via a partial sort."""
    n = dist.shape[1]
    h = 0.95 * (n - 1)
    k = int(math.floor(h))
    kk = min(k + 1, n - 1)
    part = np.partition(dist, [k, kk] if kk != k else [k], axis=1)
    lo, hi = part[:, k].astype(np.float64), part[:, kk].astype(np.float64)
    return lo + (h - k) * (hi - lo)


def _reduce(dist: np.ndarray, statistic: Statistic) -> np.ndarray:
    """Reduce a (q, n) distance matrix to one statistic per query."""
    _check_statistic(statistic, dist.shape[1])
    if statistic == "quantile95":
        return _quantile95(dist)
    return _from_moments(_moments(dist), statistic)


def expand_groups(group_embs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fill in missing broad groups as unions of their two intersection groups."""
    out = {k: np.asarray(v) for k, v in group_embs.items()}
    for b, (m1, m2) in BROAD_MEMBERS.items():
        if b not in out and m1 in out and m2 in out:
            out[b] = np.concatenate([out[m1], out[m2]], axis=0)
    return out


def group_statistics(
    query_embs: np.ndarray,
    group_embs: Mapping[str, np.ndarray],
    statistic: Statistic = "ci_upper",
    groups: Sequence[str] | None = None,
    chunk: int = 4096,
) -> tuple[tuple[str, ...], np.ndarray]:
    """Distance statistic of every query to every group: returns ``(group_names, (q, k) matrix)``.

    Distances are d = 1 - cos (embeddings are L2-normalised here). Vectorised: one matmul per given
    group and query chunk; a broad group that was not given explicitly reuses its two intersections'
    distances (merged moments, or concatenated columns for ``quantile95``) instead of another matmul.
    """
    q = _l2n(np.atleast_2d(query_embs))
    given = {k: _l2n(np.atleast_2d(v)) for k, v in group_embs.items()}
    for name, g in given.items():
        if g.shape[1] != q.shape[1]:
            raise ValueError(f"group {name!r} has dim {g.shape[1]}, queries have {q.shape[1]}")
    names = tuple(groups) if groups is not None else tuple(expand_groups(group_embs))
    for name in names:
        if name not in given and not (name in BROAD_MEMBERS and all(m in given for m in BROAD_MEMBERS[name])):
            raise KeyError(f"no embeddings for group {name!r}")
    _check_statistic(statistic, 2)
    out = np.empty((q.shape[0], len(names)), dtype=np.float64)
    for s in range(0, q.shape[0], chunk):
        qc = q[s : s + chunk]
        cache: dict[str, Any] = {}

        def part(name: str, qc: np.ndarray = qc, cache: dict[str, Any] = cache) -> Any:
            """A group's distance matrix (quantile95) or its moments (mean, ci_upper), memoised."""
            if name not in cache:
                if name in given:
                    d = 1.0 - qc @ given[name].T
                    cache[name] = d if statistic == "quantile95" else _moments(d)
                else:
                    a, b = (part(m) for m in BROAD_MEMBERS[name])
                    cache[name] = (
                        np.concatenate([a, b], axis=1) if statistic == "quantile95" else _merge_moments(a, b)
                    )
            return cache[name]

        for j, name in enumerate(names):
            p = part(name)
            out[s : s + chunk, j] = (
                _quantile95(p) if statistic == "quantile95" else _from_moments(p, statistic)
            )
    return names, out


def group_distance(query_emb: np.ndarray, group_embs: np.ndarray, statistic: Statistic = "ci_upper") -> float:
    """Distance D(query, group): statistic of d = 1 - cos over the group's images.

    ``ci_upper`` (default) = mean(d) + t_{0.975, n-1} * sd(d) / sqrt(n) with sd using ddof=1: the upper
    limit of the 95% CI of the mean distance (our reading of the paper's "upper limit of the 95%
    confidence interval of distances"). ``mean`` and ``quantile95`` (95th percentile of d) are
    alternatives for sensitivity checks.
    """
    q = _l2n(np.asarray(query_emb).reshape(1, -1))
    g = _l2n(np.atleast_2d(group_embs))
    return float(_reduce(1.0 - q @ g.T, statistic)[0])
