"""Donor selection, the paper's two steps (Sec. 3.3).

1. **Group**: the attribute group (gender x age) whose upper 95% confidence bound of perceptual
   distances to the face is lowest, i.e. the group the face looks most like.
2. **Donor**: rank that group's donors by perceptual similarity and take a low-similarity one
   (``paper``: a seeded random pick among the least similar ``low_fraction``; ``band``: a pick inside
   a similarity band; ``farthest``: the least similar). The rest of the ranking is the retry order
   for the identity-safety check done after swapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from perface.evaluate import INTERSECTION_GROUPS, group_statistics
from perface.gallery import Gallery

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
    max_tries: int = 8  # donors tried (identity check, then gender and age group) before falling back
    statistic: Literal["ci_upper", "mean", "quantile95"] = "ci_upper"
    group_sample: int = 2000  # donors per group used for the step-1 statistic (all when fewer)
    group_by: Literal["metric", "hybrid", "predicted"] = "metric"  # step 1: the paper's rule, or with help
    gender_confidence: float = 0.9  # 'hybrid': trust the predicted gender above this probability
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


@dataclass
class Selection:
    """Step-1 group with its statistics, and the step-2 donor candidates in the order to try them."""

    group: str
    group_statistics: dict[str, float]
    candidates: list[str]
    similarities: list[float]
    notes: list[str] = field(default_factory=list)


class DonorSelector:
    """Selects donors from a gallery; caches the per-group samples used by step 1."""

    def __init__(self, gallery: Gallery, config: SelectConfig | None = None) -> None:
        self.gallery = gallery
        self.config = config or SelectConfig()
        rng = np.random.default_rng(self.config.seed)
        self._samples: dict[str, np.ndarray] = {}
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
               rng: np.random.Generator | None = None, predicted: tuple[str, float, str] | None = None
               ) -> Selection:
        """Both steps for one face embedding; ``exclude_ids`` keeps donors unique within an image."""
        cfg = self.config
        rng = rng or np.random.default_rng(cfg.seed)
        group, stats = self.choose_group(query, predicted)
        grp = GROUP_KEYS[group]
        size = len(self.gallery.ids(grp)) if hasattr(self.gallery, "ids") else len(self._samples[group])
        notes: list[str] = []
        if cfg.strategy == "band":
            res = self.gallery.search(query, k=size, group=grp, exclude_ids=tuple(exclude_ids), order="ascending")
            sims = np.asarray(res.similarities)
            lo, hi = cfg.band  # type: ignore[misc]
            inside = np.flatnonzero((sims >= lo) & (sims <= hi))
            if len(inside) == 0:
                notes.append(f"no donor inside band [{lo}, {hi}]: using the nearest to the band")
                gap = np.where(sims < lo, lo - sims, sims - hi)
                order = np.argsort(gap, kind="stable")
            else:
                order = np.concatenate([rng.permutation(inside), np.setdiff1d(np.arange(len(sims)), inside)])
            ids = [res.ids[i] for i in order]
            return Selection(group, stats, ids, [float(sims[i]) for i in order], notes)
        k = size if cfg.strategy == "farthest" else max(cfg.min_pool, int(np.ceil(cfg.low_fraction * size)))
        k = min(k, size, 1000)
        res = self.gallery.search(query, k=k, group=grp, exclude_ids=tuple(exclude_ids), order="ascending")
        order = np.arange(len(res.ids))
        if cfg.strategy == "paper":
            order = rng.permutation(order)
        return Selection(group, stats, [res.ids[i] for i in order],
                         [float(res.similarities[i]) for i in order], notes)
