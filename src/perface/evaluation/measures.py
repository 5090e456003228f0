"""Evaluation metrics for PerFace (pure numpy; no model code, no file I/O).

Two protocols from the paper (arXiv 2509.20281, notes Sec. 3.1 and 3.5):

* **Triplet (2AFC) accuracy** -- a model is right on a triplet when sim(reference, positive) is larger
  than sim(reference, negative), the positive being the image the annotators chose. Ties score
  ``ties`` (0.5 by default: a tie is a coin flip). :func:`bootstrap_ci` adds a percentile bootstrap
  interval over triplets, and :class:`TripletReport` collects rows for the printed tables.
* **Attribute-group classification (Sec. 4.5, Table 4)** -- 4 intersection groups (young/older x
  male/female) of 100 images each and the 4 broad groups (male, female, young, older) formed as unions
  of two intersections. A query's distance to a group is a statistic of d = 1 - cos over the group's
  images, by default the *upper limit of the 95% confidence interval of the mean distance*
  (``mean + t_{0.975, n-1} * sd / sqrt(n)``, sd with ddof=1) -- our reading of the paper's "upper limit
  of the 95% confidence interval of distances". The query goes to the group with the lowest statistic.

Interpretation note on Table 4 AUC: the paper's AUC values are reproduced exactly by the AUC of the
*hard* predictions, i.e. (TPR + TNR) / 2 (e.g. Young∩Male pre: P=.698, R=.812 -> Acc .865, AUC .847;
binary tasks with 500/500 queries give AUC == Acc, as in the table). We therefore compute both the
score-based ROC AUC (``auc``; from statistic differences, as a threshold-free measure) and the hard
AUC (``auc_hard``); ``auc="hard"`` selects the paper-comparable one for display.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from perface.metric.groups import (
    BROAD_GROUPS,
    BROAD_MEMBERS,
    INTERSECTION_GROUPS,
    Statistic,
    expand_groups,
    group_distance,
    group_statistics,
)

__all__ = [
    "BROAD_GROUPS",
    "GROUP_DISPLAY",
    "INTERSECTION_GROUPS",
    "TABLE4_ROWS",
    "TASKS",
    "AttributeGroupReport",
    "Estimate",
    "GroupPrediction",
    "GroupRow",
    "GroupSplit",
    "TripletReport",
    "TripletRow",
    "attribute_group_comparison_markdown",
    "attribute_group_report",
    "bootstrap_ci",
    "classify_attribute_groups",
    "expand_groups",
    "format_table",
    "group_distance",
    "group_statistics",
    "make_groups",
    "report_from_predictions",
    "roc_auc",
    "triplet_accuracy",
    "triplet_outcomes",
]

AucMode = Literal["score", "hard"]

# --------------------------------------------------------------------------------------------------
# Group vocabulary
# --------------------------------------------------------------------------------------------------
GROUP_DISPLAY: dict[str, str] = {
    "male": "Male",
    "female": "Female",
    "young": "Young",
    "older": "Older",
    "young_male": "Young∩Male",
    "young_female": "Young∩Female",
    "older_male": "Older∩Male",
    "older_female": "Older∩Female",
}
#: row order of the paper's Table 4
TABLE4_ROWS: tuple[str, ...] = BROAD_GROUPS + INTERSECTION_GROUPS
#: task name -> competing groups; binary tasks list the "positive" group first
TASKS: dict[str, tuple[str, ...]] = {
    "gender": ("male", "female"),
    "age": ("young", "older"),
    "four_way": INTERSECTION_GROUPS,
}



# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------
def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float | np.floating) and math.isnan(float(v)))


def _fmt_cell(v: Any, float_fmt: str) -> str:
    if _is_missing(v):
        return "—"
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, float | np.floating):
        return format(float(v), float_fmt)
    return str(v).replace("|", "\\|").replace("\n", " ")


def format_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | Sequence[tuple[str, str]] | Mapping[str, str],
    float_fmt: str = ".3f",
) -> str:
    """Render ``rows`` as a GitHub-markdown table.

    ``columns`` is a list of keys, a list of ``(key, header)`` pairs, or a ``{key: header}`` mapping.
    Floats use ``float_fmt``; missing values (None/NaN/absent key) print as "—"; numeric columns are
    right-aligned. Used for every printed table so that reports look alike.
    """
    if isinstance(columns, Mapping):
        cols = list(columns.items())
    else:
        cols = [(c, c) if isinstance(c, str) else (c[0], c[1]) for c in columns]
    if not cols:
        raise ValueError("format_table needs at least one column")
    header = [str(h).replace("|", "\\|") for _, h in cols]
    body = [[_fmt_cell(r.get(k), float_fmt) for k, _ in cols] for r in rows]
    numeric = []
    for k, _ in cols:
        vals = [r.get(k) for r in rows if not _is_missing(r.get(k))]
        numeric.append(
            bool(vals)
            and all(
                isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
                for v in vals
            )
        )
    sep = ["---:" if n else "---" for n in numeric]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def _json_safe(obj: Any) -> Any:
    """Recursively convert numpy scalars/arrays and NaN (-> None) so ``json.dumps`` accepts it."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return None if math.isnan(f) or math.isinf(f) else f
    return obj


# --------------------------------------------------------------------------------------------------
# Triplet accuracy
# --------------------------------------------------------------------------------------------------
def _as_1d(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        if a.ndim == 0 or sum(d > 1 for d in a.shape) > 1:
            raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
        a = a.reshape(-1)  # (n, 1) / (1, n) column or row vectors
    if a.size and not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN/inf; drop or impute failed triplets before scoring")
    return a


def _check_weights(weights: Any, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = _as_1d(weights, "weights")
    if w.shape[0] != n:
        raise ValueError(f"weights has length {w.shape[0]}, expected {n}")
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative with a positive sum")
    return w


def triplet_outcomes(sim_pos: Any, sim_neg: Any, ties: float = 0.5) -> np.ndarray:
    """Per-triplet score: 1 if sim_pos > sim_neg, ``ties`` if equal, else 0."""
    p = _as_1d(sim_pos, "sim_pos")
    q = _as_1d(sim_neg, "sim_neg")
    if p.shape != q.shape:
        raise ValueError(f"sim_pos and sim_neg differ in length: {p.shape[0]} vs {q.shape[0]}")
    return np.where(p > q, 1.0, np.where(p == q, float(ties), 0.0))


def triplet_accuracy(sim_pos: Any, sim_neg: Any, weights: Any = None, ties: float = 0.5) -> float:
    """2AFC accuracy: (weighted) share of triplets where sim(ref, positive) > sim(ref, negative).

    Ties count ``ties`` (0.5 = half right). ``weights`` (e.g. annotator agreement) are normalised.
    """
    out = triplet_outcomes(sim_pos, sim_neg, ties)
    if out.size == 0:
        raise ValueError("no triplets to score")
    w = _check_weights(weights, out.shape[0])
    if w is None:
        return float(out.mean())
    return float(np.dot(w, out) / w.sum())


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a (percentile bootstrap) confidence interval."""

    value: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


def _looks_like_pair(x: Any) -> bool:
    if isinstance(x, tuple | list) and len(x) == 2:
        return all(np.ndim(e) >= 1 for e in x)
    return False


def bootstrap_ci(
    values: Any,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    weights: Any = None,
    ties: float = 0.5,
) -> Estimate:
    """Percentile bootstrap CI of a (weighted) mean, resampling triplets with replacement.

    ``values`` is either per-triplet outcomes (1-D) or a pair ``(sim_pos, sim_neg)``, which is
    turned into 2AFC outcomes with :func:`triplet_outcomes`. Deterministic for a given ``seed``.
    """
    v = triplet_outcomes(values[0], values[1], ties) if _looks_like_pair(values) else _as_1d(values, "values")
    n = int(v.shape[0])
    if n == 0:
        raise ValueError("no values to bootstrap")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    w = _check_weights(weights, n)
    value = float(v.mean()) if w is None else float(np.dot(w, v) / w.sum())
    if n_boot <= 0:
        return Estimate(value, float("nan"), float("nan"), n)
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot, dtype=np.float64)
    chunk = max(1, 2_000_000 // n)  # bound the index matrix to ~16 MB
    for s in range(0, n_boot, chunk):
        e = min(n_boot, s + chunk)
        idx = rng.integers(0, n, size=(e - s, n))
        if w is None:
            boots[s:e] = v[idx].mean(axis=1)
        else:
            ws = w[idx]
            tot = ws.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                boots[s:e] = np.where(tot > 0, (ws * v[idx]).sum(axis=1) / tot, value)
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return Estimate(value, float(low), float(high), n)


@dataclass
class TripletRow:
    """One line of a triplet-accuracy table."""

    method: str
    split: str
    subset: str
    n: int
    accuracy: float
    low: float = float("nan")
    high: float = float("nan")

    @property
    def ci(self) -> str:
        if math.isnan(self.low) or math.isnan(self.high):
            return "—"
        return f"[{self.low:.3f}, {self.high:.3f}]"


@dataclass
class TripletReport:
    """Triplet (2AFC) accuracy rows: method x split x subset (D1 = all, D2 = unanimous triplets)."""

    rows: list[TripletRow] = field(default_factory=list)
    alpha: float = 0.05

    def add(
        self,
        method: str,
        split: str,
        subset: str,
        sim_pos: Any,
        sim_neg: Any,
        weights: Any = None,
        n_boot: int = 2000,
        seed: int = 0,
        ties: float = 0.5,
    ) -> TripletRow:
        """Score one method on one split/subset and append the row (with bootstrap CI)."""
        est = bootstrap_ci(
            (np.asarray(sim_pos), np.asarray(sim_neg)), n_boot, self.alpha, seed, weights, ties
        )
        row = TripletRow(method, split, subset, est.n, est.value, est.low, est.high)
        self.rows.append(row)
        return row

    def add_chance(self, split: str, subset: str, n: int, method: str = "chance") -> TripletRow:
        """Append the chance row: accuracy exactly 0.5, no interval."""
        row = TripletRow(method, split, subset, int(n), 0.5)
        self.rows.append(row)
        return row

    def to_dict(self) -> dict[str, Any]:
        return _json_safe({"alpha": self.alpha, "rows": [asdict(r) for r in self.rows]})

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_markdown(self) -> str:
        pct = round(100 * (1 - self.alpha))
        rows = [{**asdict(r), "ci": r.ci} for r in self.rows]
        cols = [
            ("method", "Method"),
            ("split", "Split"),
            ("subset", "Subset"),
            ("n", "n"),
            ("accuracy", "Acc"),
            ("ci", f"{pct}% CI"),
        ]
        return format_table(rows, cols)


# --------------------------------------------------------------------------------------------------
# Attribute groups: split
# --------------------------------------------------------------------------------------------------
_MALE_STR = {"m", "male", "man", "1", "true", "yes"}
_FEMALE_STR = {"f", "female", "woman", "0", "-1", "false", "no"}
_YOUNG_STR = {"y", "young", "1", "true", "yes"}
_OLD_STR = {"o", "old", "older", "0", "-1", "false", "no"}


def _parse_flag(x: Any, pos: set[str], neg: set[str], what: str) -> bool:
    if isinstance(x, str):
        s = x.strip().lower()
        if s in pos:
            return True
        if s in neg:
            return False
        raise ValueError(f"cannot read {what} label {x!r}")
    if isinstance(x, bool | np.bool_):
        return bool(x)
    f = float(x)  # CelebA uses +1 / -1; also accept 1 / 0
    if f > 0:
        return True
    if f in (0.0, -1.0):
        return False
    raise ValueError(f"cannot read {what} label {x!r}")


def _parse_labels(labels: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(gender, young) tuples or intersection-group keys -> (is_male, is_young) boolean arrays."""
    male = np.empty(len(labels), dtype=bool)
    young = np.empty(len(labels), dtype=bool)
    for i, lab in enumerate(labels):
        if isinstance(lab, str):
            if lab not in INTERSECTION_GROUPS:
                raise ValueError(f"unknown group key {lab!r}; expected one of {INTERSECTION_GROUPS}")
            young[i], male[i] = lab.startswith("young"), lab.endswith("_male")
        else:
            g, y = lab
            male[i] = _parse_flag(g, _MALE_STR, _FEMALE_STR, "gender")
            young[i] = _parse_flag(y, _YOUNG_STR, _OLD_STR, "age")
    return male, young


def _intersection_index(male: np.ndarray, young: np.ndarray) -> np.ndarray:
    """Index into INTERSECTION_GROUPS (young_male, young_female, older_male, older_female)."""
    return (~young).astype(int) * 2 + (~male).astype(int)


@dataclass
class GroupSplit:
    """Indices (into the labelled image list) of the 8 attribute groups and of the query images."""

    groups: dict[str, np.ndarray]
    queries: np.ndarray
    query_groups: list[str]
    seed: int

    def group_embeddings(self, embs: np.ndarray) -> dict[str, np.ndarray]:
        """Slice an (N, d) embedding matrix into the 8 groups' embeddings."""
        e = np.asarray(embs)
        return {k: e[v] for k, v in self.groups.items()}

    def query_embeddings(self, embs: np.ndarray) -> np.ndarray:
        return np.asarray(embs)[self.queries]

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(
            {
                "seed": self.seed,
                "groups": {k: v for k, v in self.groups.items()},
                "queries": self.queries,
                "query_groups": self.query_groups,
            }
        )


def make_groups(
    labels: Sequence[Any],
    per_group: int = 100,
    n_queries_per_group: int | None = 250,
    seed: int = 0,
    balanced: bool = False,
) -> GroupSplit:
    """Draw the Sec. 4.5 groups and queries from labelled images.

    ``labels[i]`` is ``(gender, young)`` (bools, CelebA +1/-1, or strings such as "male"/"female",
    "young"/"older") or an intersection key like ``"older_female"``. Each intersection group gets
    ``per_group`` random images; broad groups are unions of two intersections. Queries come from the
    remaining images only (disjoint from every group): ``n_queries_per_group`` per intersection, or as
    many as remain (``None`` = all remaining). ``balanced=True`` cuts every intersection to the
    smallest available count so the query set is exactly balanced.
    """
    male, young = _parse_labels(labels)
    inter = _intersection_index(male, young)
    rng = np.random.default_rng(seed)
    groups: dict[str, np.ndarray] = {}
    remaining: list[np.ndarray] = []
    for gi, key in enumerate(INTERSECTION_GROUPS):
        pool = rng.permutation(np.flatnonzero(inter == gi))
        if pool.size < per_group:
            raise ValueError(f"group {key} has {pool.size} images, fewer than per_group={per_group}")
        groups[key] = np.sort(pool[:per_group])
        remaining.append(pool[per_group:])
    counts = [r.size if n_queries_per_group is None else min(r.size, n_queries_per_group) for r in remaining]
    if balanced:
        counts = [min(counts)] * len(counts)
    q_idx: list[np.ndarray] = []
    q_keys: list[str] = []
    for key, pool, c in zip(INTERSECTION_GROUPS, remaining, counts, strict=True):
        q_idx.append(pool[:c])  # pool is already a random permutation
        q_keys += [key] * c
    for b, (m1, m2) in BROAD_MEMBERS.items():
        groups[b] = np.concatenate([groups[m1], groups[m2]])
    groups = {k: groups[k] for k in TABLE4_ROWS}
    queries = np.concatenate(q_idx) if q_idx else np.empty(0, dtype=np.int64)
    return GroupSplit(groups=groups, queries=queries.astype(np.int64), query_groups=q_keys, seed=seed)


@dataclass
class GroupPrediction:
    """Per-task result: statistics (q, k) for the task's groups and the argmin prediction."""

    task: str
    groups: tuple[str, ...]
    statistics: np.ndarray
    predicted: np.ndarray

    @property
    def predicted_names(self) -> list[str]:
        return [self.groups[i] for i in self.predicted]


def classify_attribute_groups(
    query_embs: np.ndarray,
    group_embs: Mapping[str, np.ndarray],
    tasks: Iterable[str] = ("gender", "age", "four_way"),
    statistic: Statistic = "ci_upper",
) -> dict[str, GroupPrediction]:
    """Assign each query, per task, to the group with the lowest distance statistic.

    Tasks: ``gender`` (male vs female, broad groups), ``age`` (young vs older, broad groups),
    ``four_way`` (the 4 intersections). ``group_embs`` needs the 4 intersections at least; missing
    broad groups are built as unions.
    """
    tasks = list(tasks)
    needed: list[str] = []
    for t in tasks:
        if t not in TASKS:
            raise ValueError(f"unknown task {t!r}; expected one of {tuple(TASKS)}")
        needed += [g for g in TASKS[t] if g not in needed]
    names, stats = group_statistics(query_embs, group_embs, statistic, needed)
    col = {n: i for i, n in enumerate(names)}
    out: dict[str, GroupPrediction] = {}
    for t in tasks:
        s = stats[:, [col[g] for g in TASKS[t]]]
        out[t] = GroupPrediction(t, TASKS[t], s, np.argmin(s, axis=1))
    return out


# --------------------------------------------------------------------------------------------------
# Attribute groups: metrics and report
# --------------------------------------------------------------------------------------------------
def roc_auc(y_true: Any, score: Any) -> float:
    """ROC AUC via the Mann-Whitney rank statistic (ties get average ranks); NaN if one class is empty."""
    from scipy.stats import rankdata

    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _safe_div(a: float, b: float) -> float:
    return float(a) / float(b) if b else float("nan")


@dataclass
class GroupRow:
    """One Table 4 row. For binary tasks ``accuracy``/``auc`` are shared by the pair of rows."""

    group: str
    name: str
    task: str
    support: int
    n_predicted: int
    precision: float
    recall: float
    accuracy: float
    auc: float
    auc_hard: float


@dataclass
class AttributeGroupReport:
    """Table 4-style report: per-group P/R, per-task Acc/AUC, overall accuracy per task.

    ``auc_mode`` picks which AUC the markdown shows: "score" (ROC AUC of statistic differences) or
    "hard" ((TPR+TNR)/2 of the predictions -- what reproduces the paper's numbers).
    """

    rows: list[GroupRow]
    overall_accuracy: dict[str, float]
    n_queries: int
    statistic: str = "ci_upper"
    auc_mode: AucMode = "score"

    def row(self, group: str) -> GroupRow:
        for r in self.rows:
            if r.group == group:
                return r
        raise KeyError(group)

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(
            {
                "n_queries": self.n_queries,
                "statistic": self.statistic,
                "auc_mode": self.auc_mode,
                "overall_accuracy": self.overall_accuracy,
                "rows": [asdict(r) for r in self.rows],
            }
        )

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def table_rows(self) -> list[dict[str, Any]]:
        key = "auc_hard" if self.auc_mode == "hard" else "auc"
        return [
            {"Category": r.name, "P": r.precision, "R": r.recall, "Acc": r.accuracy, "AUC": getattr(r, key)}
            for r in self.rows
        ]

    def to_markdown(self) -> str:
        table = format_table(self.table_rows(), ["Category", "P", "R", "Acc", "AUC"])
        notes = ", ".join(f"{t} {a:.3f}" for t, a in self.overall_accuracy.items())
        return (
            f"{table}\n\nOverall accuracy: {notes} (n={self.n_queries}, statistic={self.statistic}, "
            f"AUC={self.auc_mode})"
        )


def report_from_predictions(
    predictions: Mapping[str, GroupPrediction],
    query_labels: Sequence[Any],
    auc_mode: AucMode = "score",
    statistic: str = "ci_upper",
) -> AttributeGroupReport:
    """Compute Table 4 metrics from :func:`classify_attribute_groups` output and true labels.

    Binary tasks: P/R per group, one Acc and one AUC per pair (score = stat[second] - stat[first], so a
    larger value favours the first group; the AUC is symmetric). 4-way: P/R and one-vs-rest Acc =
    (TP+TN)/N and AUC (score = -stat[group]) per group, plus overall 4-way accuracy.
    """
    male, young = _parse_labels(query_labels)
    truth = {
        "gender": (~male).astype(int),
        "age": (~young).astype(int),
        "four_way": _intersection_index(male, young),
    }
    n = male.shape[0]
    rows: dict[str, GroupRow] = {}
    overall: dict[str, float] = {}
    for task, pred in predictions.items():
        y = truth[task]
        p = pred.predicted
        if p.shape[0] != n:
            raise ValueError(f"{task}: {p.shape[0]} predictions for {n} labels")
        overall[task] = float((p == y).mean()) if n else float("nan")
        k = len(pred.groups)
        for j, g in enumerate(pred.groups):
            tp = int(np.sum((p == j) & (y == j)))
            support = int(np.sum(y == j))
            n_pred = int(np.sum(p == j))
            tn = int(np.sum((p != j) & (y != j)))
            prec, rec = _safe_div(tp, n_pred), _safe_div(tp, support)
            # hard AUC = (TPR + TNR) / 2; for a pair it is the mean of both recalls, same for both rows
            auc_hard = 0.5 * (rec + _safe_div(tn, n - support))
            if k == 2:  # one Acc / AUC per pair; AUC is symmetric under swapping the pair
                acc = overall[task]
                auc = roc_auc(y == 0, pred.statistics[:, 1] - pred.statistics[:, 0])
            else:  # one-vs-rest
                acc = _safe_div(tp + tn, n)
                auc = roc_auc(y == j, -pred.statistics[:, j])
            rows[g] = GroupRow(
                g, GROUP_DISPLAY.get(g, g), task, support, n_pred, prec, rec, acc, auc, auc_hard
            )
    ordered = [rows[g] for g in TABLE4_ROWS if g in rows] + [
        r for g, r in rows.items() if g not in TABLE4_ROWS
    ]
    return AttributeGroupReport(ordered, overall, n, statistic, auc_mode)


def attribute_group_report(
    query_embs: np.ndarray,
    query_labels: Sequence[Any],
    group_embs: Mapping[str, np.ndarray],
    statistic: Statistic = "ci_upper",
    tasks: Iterable[str] = ("gender", "age", "four_way"),
    auc_mode: AucMode = "score",
) -> AttributeGroupReport:
    """Classify queries into attribute groups and report Table 4 metrics (see module docstring)."""
    preds = classify_attribute_groups(query_embs, group_embs, tasks, statistic)
    return report_from_predictions(preds, query_labels, auc_mode, statistic)


def attribute_group_comparison_markdown(reports: Mapping[str, AttributeGroupReport]) -> str:
    """Side-by-side Table 4 (e.g. ``{"Pre": r0, "Post": r1}``) with columns "Pre P", "Pre R", ..."""
    cols: list[tuple[str, str]] = [("Category", "Category")]
    merged: dict[str, dict[str, Any]] = {}
    for label, rep in reports.items():
        for tr in rep.table_rows():
            d = merged.setdefault(tr["Category"], {"Category": tr["Category"]})
            for m in ("P", "R", "Acc", "AUC"):
                d[f"{label} {m}"] = tr[m]
        cols += [(f"{label} {m}", f"{label} {m}") for m in ("P", "R", "Acc", "AUC")]
    return format_table(list(merged.values()), cols)


def wilson_interval(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k / n (scipy's binomtest); (nan, nan) when n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(0.95, method="wilson")
    return float(ci.low), float(ci.high)
