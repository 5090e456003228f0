"""Donor selection, the paper's two steps (Sec. 3.3).

1. **Group**: the attribute group (gender x age) whose upper 95% confidence bound of perceptual
   distances to the face is lowest, i.e. the group the face looks most like.
2. **Donor**: rank that group's donors by perceptual similarity and take a low-similarity one
   (``paper``: a seeded random pick among the least similar ``low_fraction``; ``band``: a pick inside
   a similarity band; ``farthest``: the least similar). The candidates come in the order to try them:
   the checks after swapping (identity, then gender and age group) may reject the first ones.

When the face's age is known (the anonymizer predicts it), step 2 only considers donors within
``max_age_gap`` years of it. Without that, "least similar within *young* (< 40)" favours toddlers for
a 30-year-old: on CelebA one adult in ten got a donor aged 0-8. The paper's groups are adults only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from perface.anonymize.gallery import Gallery
from perface.metric.groups import INTERSECTION_GROUPS, group_statistics

Strategy = Literal["paper", "band", "farthest"]
GROUP_KEYS: dict[str, tuple[str, str]] = {
    "young_male": ("male", "young"),
    "older_male": ("male", "older"),
    "young_female": ("female", "young"),
    "older_female": ("female", "older"),
}


@dataclass(frozen=True)
class SelectConfig:
    """Donor-selection settings (see the module docstring)."""

    strategy: Strategy = "paper"
    band: tuple[float, float] | None = None  # similarity band for strategy 'band', e.g. (0.1, 0.3)
    low_fraction: float = 0.2  # 'paper': pick among this least-similar share of the group
    min_pool: int = 5  # ... but among at least this many donors
    # Donors tried (identity check, then gender and age group) before falling back. 16 rather than 8: on the seed-1
    # tuning draw 10 rather than 20 of 150 faces were blurred because every donor tried was refused, for 0.95x the
    # images/s (docs/benchmarks.md, "Why faces are still blurred").
    max_tries: int = 16
    statistic: Literal["ci_upper", "mean", "quantile95"] = "ci_upper"
    group_sample: int = 2000  # donors per group used for the step-1 statistic (all when fewer)
    # Step 1: "metric" is the paper's rule alone; "hybrid" (default) applies it within the gender that the offline
    # predictor is sure of (p >= gender_confidence). With "metric", 9 of 150 CelebA faces of a tuning draw went to a
    # group of the other gender, where no donor can keep their gender.
    group_by: Literal["metric", "hybrid", "predicted"] = "hybrid"
    gender_confidence: float = 0.9  # 'hybrid': trust the predicted gender above this probability
    max_age_gap: float | None = 15.0  # step 2: donors within this many years of the face's age (None: any)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in ("paper", "band", "farthest"):
            raise ValueError(f"strategy must be paper, band or farthest, got {self.strategy!r}")
        if self.strategy == "band":
            if self.band is None:
                raise ValueError("strategy 'band' needs band=(low, high)")
            lo, hi = self.band
            if not -1.0 <= lo < hi <= 1.0:
                raise ValueError(f"band must satisfy -1 <= low < high <= 1, got {self.band}")
        if self.group_by not in ("metric", "hybrid", "predicted"):
            raise ValueError(f"group_by must be metric, hybrid or predicted, got {self.group_by!r}")
        if not 0 < self.low_fraction <= 1:
            raise ValueError("low_fraction must be in (0, 1]")
        if self.max_tries < 1:
            raise ValueError("max_tries must be >= 1")
        if self.max_age_gap is not None and self.max_age_gap < 0:
            raise ValueError(f"max_age_gap must be >= 0 or None, got {self.max_age_gap}")


@dataclass
class Selection:
    """Step-1 group with its statistics, and the step-2 donor candidates in the order to try them."""

    group: str
    group_statistics: dict[str, float]
    candidates: list[str]
    similarities: list[float]
    notes: list[str] = field(default_factory=list)
    pool: int = 0  # how many leading candidates were drawn at random ('paper': the least similar share)


class DonorSelector:
    """Selects donors from a gallery; caches the per-group samples used by step 1."""

    def __init__(self, gallery: Gallery, config: SelectConfig | None = None) -> None:
        self.gallery = gallery
        self.config = config or SelectConfig()
        rng = np.random.default_rng(self.config.seed)
        self._samples: dict[str, np.ndarray] = {}
        self._ages: dict[tuple[str, str], dict[str, float]] = {}  # per group, filled on first use
        for key, grp in GROUP_KEYS.items():
            m = gallery.perceptual_matrix(grp, normalized=True)
            if len(m) > self.config.group_sample:
                m = m[rng.choice(len(m), self.config.group_sample, replace=False)]
            if len(m) >= 2:
                self._samples[key] = m
        if not self._samples:
            raise ValueError(f"gallery {gallery.path} has no attribute group with >= 2 donors")

    def choose_group(self, query: np.ndarray, predicted: tuple[str, float, str] | None = None
                     ) -> tuple[str, dict[str, float]]:
        """Step 1: the group with the lowest distance statistic (most similar).

        ``predicted`` = (gender, gender probability, age group) from an attribute predictor: with
        ``group_by='hybrid'`` a confident gender restricts the candidates to that gender's groups; with
        ``'predicted'`` the predicted group is taken as is.
        """
        names, stats = group_statistics(query[None].astype(np.float32), self._samples, self.config.statistic,
                                        groups=[k for k in INTERSECTION_GROUPS if k in self._samples])
        values = {n: float(s) for n, s in zip(names, stats[0], strict=True)}
        allowed = list(values)
        if predicted is not None and self.config.group_by != "metric":
            gender, prob, age_group = predicted
            if self.config.group_by == "predicted":
                allowed = [k for k in allowed if GROUP_KEYS[k] == (gender, age_group)] or allowed
            elif prob >= self.config.gender_confidence:
                allowed = [k for k in allowed if GROUP_KEYS[k][0] == gender] or allowed
        return min(allowed, key=values.get), values

    def select(self, query: np.ndarray, exclude_ids: set[str] | frozenset[str] = frozenset(),
               rng: np.random.Generator | None = None, predicted: tuple[str, float, str] | None = None,
               age: float | None = None) -> Selection:
        """Both steps for one face embedding; ``exclude_ids`` keeps donors unique within an image.

        ``age``: the face's (predicted) age in years, for the ``max_age_gap`` rule of step 2.
        """
        cfg = self.config
        rng = rng or np.random.default_rng(cfg.seed)
        group, stats = self.choose_group(query, predicted)
        grp = GROUP_KEYS[group]
        size = len(self.gallery.ids(grp)) if hasattr(self.gallery, "ids") else len(self._samples[group])
        notes: list[str] = []
        by_age = age is not None and cfg.max_age_gap is not None and hasattr(self.gallery, "ages")
        if cfg.strategy == "band" or by_age:  # rank the whole group (at most 1000), then narrow it down
            k = min(size, 1000)
        else:
            k = size if cfg.strategy == "farthest" else max(cfg.min_pool, int(np.ceil(cfg.low_fraction * size)))
            k = min(k, size, 1000)
        res = self.gallery.search(query, k=k, group=grp, exclude_ids=tuple(exclude_ids), order="ascending")
        ids, sims = list(res.ids), np.asarray(res.similarities, dtype=np.float64)
        rest: list[int] = []
        if by_age and ids:
            window, rest = self._age_window(ids, grp, float(age), notes)  # type: ignore[arg-type]
        else:
            window = list(range(len(ids)))
        w_sims = sims[window]
        pool = 0  # leading candidates drawn at random (Selection.pool)
        if cfg.strategy == "band":
            lo, hi = cfg.band  # type: ignore[misc]
            inside = np.flatnonzero((w_sims >= lo) & (w_sims <= hi))
            if len(inside) == 0:
                notes.append(f"no donor inside band [{lo}, {hi}]: using the nearest to the band")
                gap = np.where(w_sims < lo, lo - w_sims, w_sims - hi)
                order = np.argsort(gap, kind="stable")
            else:
                order = np.concatenate([rng.permutation(inside), np.setdiff1d(np.arange(len(w_sims)), inside)])
        else:
            order = np.arange(len(window))
            if cfg.strategy == "paper":
                n = max(cfg.min_pool, int(np.ceil(cfg.low_fraction * len(window)))) if by_age else len(window)
                # A random pick among the least similar; with the age window, the rest of it follows, least
                # similar first, as the retry order (the window can be small and the checks may reject donors).
                order = np.concatenate([rng.permutation(min(n, len(window))), order[n:]]).astype(int)
                pool = min(n, len(window))
        # Donors outside the age window come last, closest in age first: a swap that misses the age is still
        # anonymous, and better than a blur once the window is used up.
        final = [window[i] for i in order] + rest
        return Selection(group, stats, [ids[i] for i in final], [float(sims[i]) for i in final], notes, pool)

    def _age_window(self, ids: list[str], group: tuple[str, str], age: float, notes: list[str]
                    ) -> tuple[list[int], list[int]]:
        """Positions in ``ids`` of donors within ``max_age_gap`` years of ``age`` (kept in order), and of the
        others, closest in age first. When fewer than ``min_pool`` are inside, the ``min_pool`` closest are."""
        if group not in self._ages:
            self._ages[group] = self.gallery.ages(group)
        gap = np.abs(np.array([self._ages[group].get(i, np.nan) for i in ids]) - age)
        by_gap = np.argsort(np.nan_to_num(gap, nan=np.inf), kind="stable")
        inside = set(np.flatnonzero(gap <= self.config.max_age_gap).tolist())
        if len(inside) < min(self.config.min_pool, len(ids)):
            notes.append(f"fewer than {self.config.min_pool} donors within {self.config.max_age_gap:g} years of "
                         f"age {age:.0f}: using the closest in age")
            inside = set(by_gap[: self.config.min_pool].tolist())
        return sorted(inside), [int(i) for i in by_gap if int(i) not in inside]
