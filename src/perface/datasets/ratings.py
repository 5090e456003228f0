"""Rating-derived triplets from One Million Impressions (OMI) attribute ratings.

These triplets are a *stand-in* for human similarity judgments, not human similarity judgments:
nobody was asked which face looks more similar. OMI (Peterson et al., PNAS 2022) asked raters to
score 800 synthetic faces on 34 attributes (0-100); here a perceptual distance between two faces is
built from their mean ratings on appearance attributes, and a triplet (anchor, positive, negative)
is kept only when the order d(anchor, positive) < d(anchor, negative) is stable under resampling
of the raters.

The distance: each attribute's per-face mean is z-scored across the faces in use and weighted by
the attribute's reliability (split-half correlation across faces, each face's ratings split at
random into halves, Spearman-Brown corrected, averaged over several random splits); attributes
below ``reliability_floor`` get weight 0. So ``d(i, j)^2 = sum_k w_k (z_ik - z_jk)^2``. The
z-scores and reliabilities use only the faces passed in, so held-out faces (:func:`split_faces`)
never shape the distance used for training triplets. In the bootstrap only the per-face means are
resampled (each face's ratings of each attribute, with replacement); the z-scoring and the weights
stay at their point estimates.

Data layout (``root``): ``attribute_means.csv`` (``stimulus`` + 34 attribute columns),
``attribute_ratings.csv.gz`` (``rating,attribute,rating_type,stimulus``) and ``images/<stimulus>.jpg``.

Choices, all in :class:`RatingTripletConfig`:

* ``rating_types`` defaults to ``("normal", "fill-in")``. ``repeat`` ratings are left out because
  in OMI they are, to our understanding, a rater's second rating of a face already rated (a
  test-retest check), so they are not independent raters and would make the rater bootstrap
  over-confident. (``attribute_means.csv`` averages all three types; the difference in the means is
  small.)
* Gender direction: the OMI ``gender`` rating is *high for male-looking faces* (stimulus 1, a man,
  has 86.9, stimulus 2, a woman, 12.6; across faces it correlates -0.87 with ``long-haired``).
  Gender-matched candidates put all three faces on the anchor's side of ``gender_midpoint`` (mean
  rating < 50: female-looking, >= 50: male-looking).
* ``n_candidates`` is the number of *candidate* triplets sampled (distinct anchor + unordered pair);
  the number kept depends on ``threshold``.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
import warnings
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DatasetError, DatasetWarning, summarise
from .triplets import Triplet, TripletSet

__all__ = [
    "APPEARANCE_ATTRIBUTES",
    "OMI_MEANS",
    "OMI_RATINGS",
    "AttributeTable",
    "RatingSpace",
    "RatingTripletConfig",
    "RatingTripletReport",
    "RatingsTable",
    "attribute_table",
    "build_rating_triplets",
    "load_ratings",
    "rating_space",
    "rating_triplets",
    "split_faces",
    "split_half_reliability",
]

OMI_MEANS = "attribute_means.csv"
OMI_RATINGS = "attribute_ratings.csv.gz"

#: Appearance attributes of OMI (social impressions such as "trustworthy" are left out).
APPEARANCE_ATTRIBUTES: tuple[str, ...] = (
    "age", "gender", "weight", "long-haired", "hair-color", "skin-color", "happy", "well-groomed",
    "asian", "black", "white", "middle-eastern", "hispanic", "islander", "native", "attractive", "typical",
)  # fmt: skip


@dataclass(frozen=True)
class RatingTripletConfig:
    """Settings of the rating-derived triplet builder (see the module doc for the reasoning).

    ``reliability_splits`` random split-halves are averaged per attribute; ``bootstrap`` rater
    resamples decide each candidate and it is kept when the share preserving its order is at least
    ``threshold``; ``gender_matched_fraction`` of the candidates are drawn within one side of the
    gender midpoint (0 disables this, and then the ``gender`` attribute is only needed if listed).
    """

    attributes: tuple[str, ...] = APPEARANCE_ATTRIBUTES
    rating_types: tuple[str, ...] = ("normal", "fill-in")
    reliability_floor: float = 0.5
    reliability_splits: int = 20
    bootstrap: int = 200
    threshold: float = 0.95
    n_candidates: int = 20_000
    gender_matched_fraction: float = 0.5
    gender_attribute: str = "gender"
    gender_midpoint: float = 50.0
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", tuple(self.attributes))
        object.__setattr__(self, "rating_types", tuple(self.rating_types))
        if not self.attributes or len(set(self.attributes)) != len(self.attributes):
            raise ValueError(f"attributes must be non-empty and distinct, got {self.attributes!r}")
        if not self.rating_types:
            raise ValueError("rating_types must not be empty")
        checks = [
            (-1.0 <= self.reliability_floor <= 1.0, "reliability_floor must be in [-1, 1]"),
            (self.reliability_splits >= 1, "reliability_splits must be >= 1"),
            (self.bootstrap >= 1, "bootstrap must be >= 1"),
            (0.5 <= self.threshold <= 1.0, "threshold must be in [0.5, 1]"),
            (self.n_candidates >= 1, "n_candidates must be >= 1"),
            (0.0 <= self.gender_matched_fraction <= 1.0, "gender_matched_fraction must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"RatingTripletConfig: {message}")

    @property
    def needed_attributes(self) -> tuple[str, ...]:
        """The attributes to load: the distance attributes plus gender when gender matching is on."""
        extra = (self.gender_attribute,) if self.gender_matched_fraction > 0 else ()
        return tuple(dict.fromkeys((*self.attributes, *extra)))


def _sort_ids(ids: Iterable[str]) -> tuple[str, ...]:
    """Distinct ids, numerically sorted when they are all digits, otherwise lexically."""
    unique = set(ids)
    if all(i.isdigit() for i in unique):
        return tuple(sorted(unique, key=int))
    return tuple(sorted(unique))


# -- tables ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class AttributeTable:
    """Mean rating of each attribute per face, as published in ``attribute_means.csv``."""

    face_ids: tuple[str, ...]
    attributes: tuple[str, ...]
    values: np.ndarray  # (n_faces, n_attributes), NaN where missing

    def column(self, attribute: str) -> np.ndarray:
        """The mean ratings of one attribute, aligned with ``face_ids``."""
        return self.values[:, self.attributes.index(attribute)]

    def row(self, face_id: str) -> dict[str, float]:
        """All mean ratings of one face."""
        values = self.values[self.face_ids.index(str(face_id))]
        return dict(zip(self.attributes, values.tolist(), strict=True))


def attribute_table(root: str | os.PathLike[str]) -> AttributeTable:
    """Read ``<root>/attribute_means.csv`` (``stimulus`` + one column per attribute)."""
    path = Path(root) / OMI_MEANS
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows or rows[0][0].strip() != "stimulus" or len(rows[0]) < 2:
        raise DatasetError(f"{path}: expected a header 'stimulus,<attribute>,...'")
    attributes = tuple(h.strip() for h in rows[0][1:])
    face_ids: list[str] = []
    values = np.full((len(rows) - 1, len(attributes)), np.nan)
    for i, row in enumerate(rows[1:]):
        if len(row) != len(attributes) + 1:
            raise DatasetError(
                f"{path}, line {i + 2}: expected {len(attributes) + 1} columns, got {len(row)}"
            )
        face_ids.append(row[0].strip())
        try:
            values[i] = [float(c) if c.strip() else math.nan for c in row[1:]]
        except ValueError as e:
            raise DatasetError(f"{path}, line {i + 2}: {e}") from None
    if len(set(face_ids)) != len(face_ids):
        raise DatasetError(f"{path}: duplicate stimulus ids")
    return AttributeTable(tuple(face_ids), attributes, values)


@dataclass(frozen=True, eq=False)
class RatingsTable:
    """Raw ratings in long form: one entry per (face, attribute, rating), as index arrays."""

    face_ids: tuple[str, ...]
    attributes: tuple[str, ...]
    face: np.ndarray  # int index into face_ids, per rating
    attribute: np.ndarray  # int index into attributes, per rating
    rating: np.ndarray  # float64, per rating

    def __len__(self) -> int:
        return int(self.rating.shape[0])


def load_ratings(
    root: str | os.PathLike[str],
    rating_types: Sequence[str] = ("normal", "fill-in"),
    attributes: Sequence[str] | None = None,
) -> RatingsTable:
    """Read ``<root>/attribute_ratings.csv.gz``, keeping the given rating types and attributes."""
    path = Path(root) / OMI_RATINGS
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    types = set(rating_types)
    keep = set(attributes) if attributes is not None else None
    face_ix: dict[str, int] = {}
    attr_ix: dict[str, int] = {}
    faces, attrs, values = array("i"), array("i"), array("d")
    try:
        with gzip.open(path, "rt", newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            cols = ("rating", "attribute", "rating_type", "stimulus")
            if not set(cols) <= set(header):
                raise DatasetError(f"{path}: bad header {','.join(header)!r}, expected {','.join(cols)!r}")
            ir, ia, it, ist = (header.index(c) for c in cols)
            width = len(header)
            for line, row in enumerate(reader, start=2):
                if len(row) != width:
                    if not row:
                        continue
                    raise DatasetError(f"{path}, line {line}: expected {width} columns, got {len(row)}")
                attr = row[ia]
                if row[it] not in types or (keep is not None and attr not in keep):
                    continue
                try:
                    value = float(row[ir])
                except ValueError:
                    raise DatasetError(f"{path}, line {line}: rating {row[ir]!r} is not a number") from None
                if not math.isfinite(value):
                    raise DatasetError(f"{path}, line {line}: rating {row[ir]!r} is not finite")
                faces.append(face_ix.setdefault(row[ist], len(face_ix)))
                attrs.append(attr_ix.setdefault(attr, len(attr_ix)))
                values.append(value)
    except (OSError, EOFError, csv.Error, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read ({e})") from e
    if keep is not None and (absent := sorted(keep - set(attr_ix))):
        raise DatasetError(
            f"{path}: no {'/'.join(sorted(types))} ratings for attribute(s) {', '.join(absent)}"
        )
    if not values:
        raise DatasetError(f"{path}: no ratings of type {'/'.join(sorted(types))}")
    # Re-index faces in sorted order and attributes in the requested order, so results do not
    # depend on the row order of the file.
    face_ids = _sort_ids(face_ix)
    attr_names = tuple(a for a in attributes if a in attr_ix) if attributes is not None else tuple(attr_ix)
    face_pos = {f: i for i, f in enumerate(face_ids)}
    # dicts keep insertion order, which is the order of the provisional indices 0, 1, ...
    face_map = np.array([face_pos[k] for k in face_ix], dtype=np.int32)
    attr_map = np.array([attr_names.index(k) for k in attr_ix], dtype=np.int32)
    return RatingsTable(
        face_ids=face_ids,
        attributes=attr_names,
        face=face_map[np.frombuffer(faces, dtype=np.int32)],
        attribute=attr_map[np.frombuffer(attrs, dtype=np.int32)],
        rating=np.frombuffer(values, dtype=np.float64).copy(),
    )


# -- group statistics ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Groups:
    """Ratings of F faces x K attributes, sorted by group g = face * K + attribute."""

    values: np.ndarray  # (N,) sorted by group
    group: np.ndarray  # (N,) group of each value
    counts: np.ndarray  # (F * K,)
    starts: np.ndarray  # (F * K,)
    n_faces: int
    n_attributes: int

    @property
    def means(self) -> np.ndarray:
        sums = np.bincount(self.group, self.values, minlength=self.counts.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (sums / self.counts).reshape(self.n_faces, self.n_attributes)


def _groups(table: RatingsTable, faces: Sequence[int], attributes: Sequence[int]) -> _Groups:
    face_pos = np.full(len(table.face_ids), -1, dtype=np.int64)
    face_pos[np.asarray(faces, dtype=np.int64)] = np.arange(len(faces))
    attr_pos = np.full(len(table.attributes), -1, dtype=np.int64)
    attr_pos[np.asarray(attributes, dtype=np.int64)] = np.arange(len(attributes))
    fp, ap = face_pos[table.face], attr_pos[table.attribute]
    mask = (fp >= 0) & (ap >= 0)
    group = fp[mask] * len(attributes) + ap[mask]
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group, minlength=len(faces) * len(attributes))
    return _Groups(
        values=table.rating[mask][order],
        group=group[order],
        counts=counts,
        starts=np.cumsum(counts) - counts,
        n_faces=len(faces),
        n_attributes=len(attributes),
    )


def _half_split_r(groups: _Groups, rng: np.random.Generator) -> np.ndarray:
    """Pearson r across faces between the means of a random half of each face's ratings and the rest."""
    shuffled = np.argsort(groups.group + rng.random(groups.group.size), kind="stable")
    g = groups.group[shuffled]
    rank = np.arange(g.size) - groups.starts[g]
    n1 = groups.counts // 2
    first = rank < n1[g]
    size = groups.counts.size
    sum1 = np.bincount(g[first], groups.values[shuffled][first], minlength=size)
    sum2 = np.bincount(g[~first], groups.values[shuffled][~first], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        m1 = (sum1 / n1).reshape(groups.n_faces, groups.n_attributes)
        m2 = (sum2 / (groups.counts - n1)).reshape(groups.n_faces, groups.n_attributes)
    m1 = m1 - m1.mean(axis=0)
    m2 = m2 - m2.mean(axis=0)
    denom = np.sqrt((m1**2).sum(axis=0) * (m2**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (m1 * m2).sum(axis=0) / denom, 0.0)


def _face_positions(table: RatingsTable, face_ids: Iterable[str] | None) -> list[int]:
    if face_ids is None:
        return list(range(len(table.face_ids)))
    index = {f: i for i, f in enumerate(table.face_ids)}
    wanted = list(dict.fromkeys(str(f) for f in face_ids))
    unknown = [f for f in wanted if f not in index]
    if unknown:
        raise ValueError(f"{len(unknown)} face id(s) have no ratings: {summarise(unknown)}")
    return [index[f] for f in wanted]


def split_half_reliability(
    ratings: RatingsTable,
    attributes: Sequence[str] | None = None,
    face_ids: Iterable[str] | None = None,
    n_splits: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """Spearman-Brown corrected split-half reliability of each attribute's per-face mean rating.

    Each face's ratings of an attribute are split at random into two halves; the per-face half
    means are correlated across faces; r is averaged over `n_splits` splits and corrected to the
    full number of raters with 2r / (1 + r). Faces need at least 2 ratings per attribute.
    """
    names = tuple(attributes) if attributes is not None else ratings.attributes
    missing = [a for a in names if a not in ratings.attributes]
    if missing:
        raise ValueError(f"no ratings for attribute(s) {', '.join(missing)}")
    faces = _face_positions(ratings, face_ids)
    if len(faces) < 3:
        raise ValueError("split-half reliability needs at least 3 faces")
    groups = _groups(ratings, faces, [ratings.attributes.index(a) for a in names])
    if groups.counts.min() < 2:
        raise ValueError("every face needs at least 2 ratings per attribute for split-half reliability")
    rng = np.random.default_rng(seed)
    r = np.mean([_half_split_r(groups, rng) for _ in range(n_splits)], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sb = np.where(r > -1, 2 * r / (1 + r), -1.0)
    return dict(zip(names, sb.tolist(), strict=True))


# -- the perceptual space ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RatingSpace:
    """Reliability-weighted, z-scored mean ratings: the rating-derived perceptual distance."""

    face_ids: tuple[str, ...]
    attributes: tuple[str, ...]
    means: np.ndarray  # (F, K) per-face mean ratings
    center: np.ndarray  # (K,) mean over faces
    scale: np.ndarray  # (K,) std over faces
    reliability: np.ndarray  # (K,) Spearman-Brown split-half reliability
    weights: np.ndarray  # (K,) reliability, or 0 below the floor

    def embed(self, means: np.ndarray) -> np.ndarray:
        """Map mean ratings (..., K) to coordinates whose Euclidean distance is the perceptual distance."""
        return (means - self.center) / self.scale * np.sqrt(self.weights)

    def features(self) -> np.ndarray:
        """Coordinates of every face, (F, K)."""
        return self.embed(self.means)

    def distance(self, face_a: str, face_b: str) -> float:
        """The rating-derived distance between two faces."""
        x = self.features()
        return float(
            np.linalg.norm(x[self.face_ids.index(str(face_a))] - x[self.face_ids.index(str(face_b))])
        )


def rating_space(
    ratings: RatingsTable, config: RatingTripletConfig, face_ids: Iterable[str] | None = None
) -> RatingSpace:
    """Build the distance of the module doc on `face_ids` (all rated faces by default).

    Means, z-scoring and reliabilities are computed from these faces only.
    """
    faces = _face_positions(ratings, face_ids)
    missing = [a for a in config.attributes if a not in ratings.attributes]
    if missing:
        raise ValueError(f"no ratings for attribute(s) {', '.join(missing)}")
    groups = _groups(ratings, faces, [ratings.attributes.index(a) for a in config.attributes])
    if groups.counts.min() < 2:
        raise ValueError("every face needs at least 2 ratings per attribute")
    means = groups.means
    rel = split_half_reliability(
        ratings,
        config.attributes,
        [ratings.face_ids[i] for i in faces],
        config.reliability_splits,
        config.seed,
    )
    reliability = np.array([rel[a] for a in config.attributes])
    scale = means.std(axis=0)
    weights = np.where(
        (reliability >= config.reliability_floor) & (scale > 0), np.clip(reliability, 0, 1), 0.0
    )
    return RatingSpace(
        face_ids=tuple(ratings.face_ids[i] for i in faces),
        attributes=config.attributes,
        means=means,
        center=means.mean(axis=0),
        scale=np.where(scale > 0, scale, 1.0),
        reliability=reliability,
        weights=weights,
    )


# -- candidates and the bootstrap -----------------------------------------------------------------


def _n_triples(n: int) -> int:
    """Number of distinct (anchor, unordered pair) candidates among n faces."""
    return n * (n - 1) * (n - 2) // 2


def _sample_candidates(
    n_faces: int, n_random: int, n_matched: int, side: np.ndarray | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (anchor, x, y) index triples, unordered in (x, y); also a gender-matched flag."""
    seen: set[tuple[int, int, int]] = set()
    rows: list[tuple[int, int, int]] = []
    matched: list[bool] = []

    def take(batch: np.ndarray, flag: bool, goal: int) -> None:
        for a, x, y in batch.tolist():
            if len(rows) >= goal:
                return
            key = (a, min(x, y), max(x, y))
            if a != x and a != y and x != y and key not in seen:
                seen.add(key)
                rows.append(key)
                matched.append(flag)

    if n_matched and side is not None:
        members = {s: np.flatnonzero(side == s) for s in (False, True)}
        sides = [s for s in (False, True) if len(members[s]) >= 3]
        goal = min(n_matched, sum(_n_triples(len(members[s])) for s in sides))
        anchors = np.flatnonzero(np.isin(side, sides))
        for _ in range(100):
            if len(rows) >= goal:
                break
            m = 2 * (goal - len(rows)) + 16
            a = anchors[rng.integers(0, anchors.size, m)]
            others = np.empty((m, 2), dtype=np.int64)
            for s in sides:
                on = side[a] == s
                others[on] = members[s][rng.integers(0, len(members[s]), (int(on.sum()), 2))]
            take(np.column_stack([a, others]), True, goal)
    goal = len(rows) + min(n_random, _n_triples(n_faces))
    for _ in range(100):
        if len(rows) >= goal:
            break
        m = 2 * (goal - len(rows)) + 16
        take(rng.integers(0, n_faces, (m, 3)), False, goal)
    return np.array(rows, dtype=np.int64).reshape(-1, 3), np.array(matched, dtype=bool)


def _bootstrap_agreement(
    groups: _Groups, space: RatingSpace, triples: np.ndarray, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """For each (anchor, positive, negative) row, the number of rater resamples with d(a,p) < d(a,n)."""
    active = np.flatnonzero(space.weights > 0)
    k = groups.n_attributes
    cols = (np.arange(groups.n_faces)[:, None] * k + active[None, :]).ravel()
    keep = np.isin(groups.group, cols)  # only the attributes that carry weight
    values, group = groups.values[keep], groups.group[keep]
    counts = groups.counts[cols]
    starts = np.cumsum(counts) - counts
    local = np.searchsorted(cols, group)  # cols is sorted: faces major, attributes minor
    n = counts[local].astype(np.int32)
    n_float = n.astype(np.float32)
    base = starts[local].astype(np.int32)
    center, scale = space.center[active], space.scale[active]
    sw = np.sqrt(space.weights[active])
    a, p, q = triples.T
    wins = np.zeros(len(triples), dtype=np.int64)
    chunk = max(1, min(n_boot, 2_000_000 // max(1, values.size)))
    for start in range(0, n_boot, chunk):
        c = min(chunk, n_boot - start)
        draw = (rng.random((c, values.size), dtype=np.float32) * n_float).astype(np.int32)
        pick = base + np.minimum(draw, n - 1)
        sums = np.add.reduceat(values[pick], starts, axis=1)  # (c, F * K_active)
        means = (sums / counts).reshape(c, groups.n_faces, active.size)
        x = (means - center) / scale * sw
        d_pos = ((x[:, a] - x[:, p]) ** 2).sum(axis=-1)
        d_neg = ((x[:, a] - x[:, q]) ** 2).sum(axis=-1)
        wins += (d_pos < d_neg).sum(axis=0)
    return wins


@dataclass(frozen=True, eq=False)
class RatingTripletReport:
    """Rating-derived triplets with the statistics behind them."""

    triplets: TripletSet
    space: RatingSpace
    n_candidates: int
    n_matched_candidates: int
    n_matched_kept: int
    agreement: np.ndarray = field(repr=False)  # bootstrap share preserving the order, per candidate

    @property
    def reliability(self) -> dict[str, float]:
        """Split-half reliability per attribute."""
        return dict(zip(self.space.attributes, self.space.reliability.tolist(), strict=True))

    @property
    def weights(self) -> dict[str, float]:
        """Distance weight per attribute (0 below the reliability floor)."""
        return dict(zip(self.space.attributes, self.space.weights.tolist(), strict=True))


def split_faces(
    ids: Iterable[str], test_fraction: float = 0.2, seed: int = 0
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Hold out faces (not triplets): returns ``(train_ids, test_ids)``, each sorted.

    Deterministic for a seed; with a non-zero fraction both parts get at least one face.
    """
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    unique = _sort_ids(str(i) for i in ids)
    n_test = round(test_fraction * len(unique))
    if test_fraction > 0 and len(unique) >= 2:
        n_test = min(max(n_test, 1), len(unique) - 1)
    test_pos = set(np.random.default_rng(seed).permutation(len(unique))[:n_test].tolist())
    train = tuple(f for i, f in enumerate(unique) if i not in test_pos)
    test = tuple(f for i, f in enumerate(unique) if i in test_pos)
    return train, test


def build_rating_triplets(
    root: str | os.PathLike[str],
    config: RatingTripletConfig | None = None,
    face_ids: Iterable[str] | None = None,
    *,
    ratings: RatingsTable | None = None,
    name: str = "OMI-rating-derived",
) -> RatingTripletReport:
    """Sample candidates among `face_ids`, keep the bootstrap-stable ones; see :func:`rating_triplets`."""
    config = config or RatingTripletConfig()
    root = Path(root)
    if ratings is None:
        ratings = load_ratings(root, config.rating_types, config.needed_attributes)
    wanted = list(ratings.face_ids) if face_ids is None else list(dict.fromkeys(str(f) for f in face_ids))
    _face_positions(ratings, wanted)  # raises on unknown ids
    needed = config.needed_attributes
    absent = [a for a in needed if a not in ratings.attributes]
    if absent:
        raise DatasetError(f"{root}: no ratings for attribute(s) {', '.join(absent)}")

    # Faces need an image and >= 2 ratings of every needed attribute.
    all_groups = _groups(
        ratings, _face_positions(ratings, wanted), [ratings.attributes.index(a) for a in needed]
    )
    few = all_groups.counts.reshape(len(wanted), len(needed)).min(axis=1) < 2
    no_image = np.array([not (root / "images" / f"{f}.jpg").is_file() for f in wanted])
    for mask, why in ((no_image, f"no image under {root / 'images'}"), (few & ~no_image, "< 2 ratings")):
        if mask.any():
            warnings.warn(
                f"OMI: skipped {int(mask.sum())} of {len(wanted)} faces with {why}: "
                f"{summarise([f for f, m in zip(wanted, mask, strict=True) if m])}",
                DatasetWarning,
                stacklevel=2,
            )
    faces = [f for f, bad in zip(wanted, no_image | few, strict=True) if not bad]
    if len(faces) < 3:
        raise DatasetError(f"{root}: fewer than 3 usable faces ({len(faces)})")

    space = rating_space(ratings, config, faces)
    if not (space.weights > 0).any():
        raise DatasetError(
            f"{root}: no attribute reaches the reliability floor {config.reliability_floor}: "
            f"{space.reliability}"
        )
    rng = np.random.default_rng(config.seed)
    side = None
    if config.gender_matched_fraction > 0:
        gender = _groups(
            ratings, _face_positions(ratings, faces), [ratings.attributes.index(config.gender_attribute)]
        )
        side = gender.means[:, 0] >= config.gender_midpoint  # True: male-looking side in OMI
    n_matched = round(config.gender_matched_fraction * config.n_candidates)
    triples, matched = _sample_candidates(len(faces), config.n_candidates - n_matched, n_matched, side, rng)

    # Orient each candidate by the point estimate: the closer face is the positive.
    x = space.features()
    a, u, v = triples.T
    swap = ((x[a] - x[u]) ** 2).sum(-1) > ((x[a] - x[v]) ** 2).sum(-1)
    triples = np.column_stack([a, np.where(swap, v, u), np.where(swap, u, v)])

    groups = _groups(
        ratings, _face_positions(ratings, faces), [ratings.attributes.index(k) for k in config.attributes]
    )
    wins = _bootstrap_agreement(groups, space, triples, config.bootstrap, rng)
    agreement = wins / config.bootstrap
    kept = np.flatnonzero(agreement >= config.threshold)
    image = {f: root / "images" / f"{f}.jpg" for f in faces}
    out = [
        Triplet(
            id=f"omi:{faces[i]}:{faces[j]}:{faces[k]}",
            reference=image[faces[i]],
            a=image[faces[j]],
            b=image[faces[k]],
            votes_a=int(wins[t]),
            votes_b=int(config.bootstrap - wins[t]),
            weight=float(agreement[t]),
        )
        for t, (i, j, k) in zip(kept.tolist(), triples[kept].tolist(), strict=True)
    ]
    return RatingTripletReport(
        triplets=TripletSet(out, name),
        space=space,
        n_candidates=len(triples),
        n_matched_candidates=int(matched.sum()),
        n_matched_kept=int(matched[kept].sum()),
        agreement=agreement,
    )


def rating_triplets(
    root: str | os.PathLike[str],
    config: RatingTripletConfig | None = None,
    face_ids: Iterable[str] | None = None,
    *,
    ratings: RatingsTable | None = None,
) -> TripletSet:
    """Rating-derived triplets (a stand-in for human similarity judgments) among `face_ids`.

    Each kept triplet has ``reference`` = anchor, ``a`` = positive (closer by the rating-derived
    distance), ``b`` = negative; ``votes_a``/``votes_b`` are the bootstrap resamples that keep/flip
    the order and ``weight`` is the share that keeps it (>= ``config.threshold``). Pass a
    pre-loaded `ratings` table to avoid re-reading the file when building several splits.
    """
    return build_rating_triplets(root, config, face_ids, ratings=ratings).triplets
