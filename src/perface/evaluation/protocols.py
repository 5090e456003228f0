"""The evaluation protocols, run on a model and data: triplet accuracy with baselines, and the
paper's Sec. 4.5 attribute-group classification on labelled folders (UTKFace names, CelebA labels).

The metrics themselves live in :mod:`perface.evaluation.measures`; this module embeds the images and assembles
the tables (printed as markdown, saved as JSON).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perface.datasets import LabelledFace, TripletSet
from perface.evaluation.measures import (
    AttributeGroupReport,
    TripletReport,
    attribute_group_comparison_markdown,
    attribute_group_report,
    make_groups,
    wilson_interval,
)
from perface.evaluation.recognizer_baselines import recognizer_embeddings, recognizer_label
from perface.metric.features import FeatureBank, build_feature_bank
from perface.metric.model import PerFaceModel
from perface.metric.train import bank_embeddings, triplet_rows

BEFORE, AFTER = "dlib identity (before)", "PerFace (after)"  # the paper's Table 4 pair


def _norm(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def baseline_embeddings(model: PerFaceModel, bank: FeatureBank) -> dict[str, np.ndarray]:
    """Baselines on the same faces: dlib identity descriptor, and the untrained backbone's pooled
    features (all levels, first view, standardised with the model's training statistics)."""
    per_view = model.first_view_dim  # the first backbone's features of the first view lead each row
    skip = 3 * model.config.color_grid**2  # the colour layout is not the backbone's
    raw = bank.pooled[:, 0, skip:per_view]
    mean = model.head.feat_mean.numpy()[skip:per_view]
    std = model.head.feat_std.numpy()[skip:per_view]
    return {"dlib identity (cosine)": bank.identity, "untrained backbone (cosine)": _norm((raw - mean) / std)}


def _sims(emb: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e = _norm(emb)
    return (e[rows[:, 0]] * e[rows[:, 1]]).sum(1), (e[rows[:, 0]] * e[rows[:, 2]]).sum(1)


def gender_matched(triplets: TripletSet, root: str) -> TripletSet:
    """OMI triplets whose three faces sit on the same side of the gender-rating midpoint."""
    from perface.datasets import attribute_table

    table = attribute_table(root)
    g = {str(f): v for f, v in zip(table.face_ids, table.column("gender"), strict=True)}

    def same(t) -> bool:
        sides = {g.get(Path(p).stem, np.nan) >= 50 for p in (t.reference, t.a, t.b)}
        return len(sides) == 1

    return triplets.filter(same, name=f"{triplets.name} (gender-matched)")


def triplet_protocol(
    model: PerFaceModel,
    subsets: dict[str, TripletSet],
    cache_dir: str | None = None,
    split: str = "test",
    n_boot: int = 2000,
    progress: bool = True,
    method_name: str = "PerFace (this model)",
) -> TripletReport:
    """Triplet accuracy with 95% bootstrap intervals: the model, dlib identity, untrained backbone, chance."""
    paths = sorted({str(p) for s in subsets.values() for t in s for p in (t.reference, t.a, t.b)})
    bank = build_feature_bank(model, paths, cache_dir=cache_dir, progress=progress)
    emb = {method_name: bank_embeddings(model, bank), **baseline_embeddings(model, bank)}
    report = TripletReport()
    for subset, trip in subsets.items():
        rows, w = triplet_rows(trip, bank)
        for name, e in emb.items():
            sp, sn = _sims(e, rows)
            report.add(name, split, subset, sp, sn, n_boot=n_boot)
        report.add_chance(split, subset, len(rows))
    return report


@dataclass
class GroupProtocolResult:
    """Sec. 4.5 before (dlib identity) and after (PerFace) on one labelled dataset."""

    dataset: str
    n_images: int
    n_dropped: int
    reports: dict[str, AttributeGroupReport]
    notes: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, float]]:
        """Gender and age-group accuracy per method (the paper's headline numbers)."""
        return {k: {"gender": r.overall_accuracy.get("gender", float("nan")),
                    "age": r.overall_accuracy.get("age", float("nan")),
                    "four_way": r.overall_accuracy.get("four_way", float("nan"))} for k, r in self.reports.items()}

    def to_markdown(self) -> str:
        head = (f"**{self.dataset}**: {self.n_images} labelled images with a detected face "
                f"({self.n_dropped} dropped: no face). Groups of 100 per gender x age cell, 250 queries per cell "
                "(fewer where a cell is small), disjoint from the groups; young = age < 40. Accuracy over the "
                "queries with its 95% Wilson interval.\n\n")

        def cell(method: str, task: str) -> str:
            r = self.reports[method]
            acc = r.overall_accuracy.get(task, float("nan"))
            lo, hi = wilson_interval(round(acc * r.n_queries), r.n_queries)
            return f"{acc:.3f} [{lo:.3f}, {hi:.3f}]"

        acc = "| method | gender acc | age-group acc | 4-way acc |\n|---|---|---|---|\n" + "\n".join(
            f"| {k} | {cell(k, 'gender')} | {cell(k, 'age')} | {cell(k, 'four_way')} |" for k in self.reports)
        pair = {k: v for k, v in self.reports.items() if k in (BEFORE, AFTER)}
        return head + acc + self.baseline_note() + \
            "\n\nTable 4 layout (P, R, Acc, AUC; AUC of hard decisions as in the paper):\n\n" + \
            attribute_group_comparison_markdown(pair)

    def best_baselines(self) -> dict[str, tuple[str, float]]:
        """Per task (gender, age), the identity baseline that scores highest and its accuracy."""
        s = self.summary()
        base = [k for k in s if k != AFTER]
        return {t: max(((k, s[k][t]) for k in base), key=lambda kv: kv[1]) for t in ("gender", "age") if base}

    def baseline_note(self) -> str:
        """One line: is PerFace at or above the best recognizer on each task (issue 18's floor)?"""
        if AFTER not in self.reports or len(self.reports) < 3:
            return ""
        mine = self.summary()[AFTER]
        parts = []
        for task, (name, acc) in self.best_baselines().items():
            word = "gender" if task == "gender" else "age group"
            verdict = "at or above it" if mine[task] >= acc else f"below it by {acc - mine[task]:.3f}"
            parts.append(f"{word}: {name} {acc:.3f}, PerFace {mine[task]:.3f}, {verdict}")
        return "\n\nBest identity baseline per task (" + "; ".join(parts) + ")."

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "n_images": self.n_images, "n_dropped": self.n_dropped,
                "summary": self.summary(), "reports": {k: r.to_dict() for k, r in self.reports.items()},
                "notes": self.notes}


def attribute_group_protocol(
    model: PerFaceModel,
    faces: list[LabelledFace],
    dataset: str,
    cache_dir: str | None = None,
    seed: int = 0,
    per_group: int = 100,
    n_queries_per_group: int = 250,
    progress: bool = True,
    recognizers: Sequence[str] = (),
) -> GroupProtocolResult:
    """Draw groups and queries, embed only those images, and report before/after Table 4 metrics; with
    ``recognizers`` (names from :data:`BASELINE_RECOGNIZERS`) each network's identity embedding as a baseline too."""
    labels = [(f.gender, f.young) for f in faces]
    split = make_groups(labels, per_group=per_group, n_queries_per_group=n_queries_per_group, seed=seed)
    used = np.unique(np.concatenate([*split.groups.values(), split.queries]))
    paths = [str(faces[i].path) for i in used]
    bank = build_feature_bank(model, paths, cache_dir=cache_dir, progress=progress)
    ok = np.array([str(faces[i].path) in bank.index for i in range(len(faces))])
    # Redraw on the faces we could embed, so groups keep their size.
    kept = [i for i in range(len(faces)) if ok[i]]
    kept_faces = [faces[i] for i in kept]
    split = make_groups([(f.gender, f.young) for f in kept_faces], per_group=per_group,
                        n_queries_per_group=n_queries_per_group, seed=seed)
    need = np.unique(np.concatenate([*split.groups.values(), split.queries]))
    missing = [str(kept_faces[i].path) for i in need if str(kept_faces[i].path) not in bank.index]
    if missing:
        bank = build_feature_bank(model, sorted(set(paths) | set(missing)), cache_dir=cache_dir, progress=progress)
    rows = np.array([bank.index.get(str(f.path), -1) for f in kept_faces])
    post_all = bank_embeddings(model, bank)
    have = rows >= 0
    full_rows: dict[str, np.ndarray] = {}  # per method, one row per kept face (zeros where it has none)
    for name, e in ((BEFORE, bank.identity), (AFTER, post_all)):
        full_rows[name] = np.zeros((len(kept_faces), e.shape[1]), np.float32)
        full_rows[name][have] = e[rows[have]]
    if recognizers:
        wanted = [str(kept_faces[i].path) for i in need]
        vecs = recognizer_embeddings(wanted, recognizers, cache_dir=cache_dir, progress=progress)
        for name in recognizers:
            table = vecs[name]
            dim = len(next(iter(table.values()))) if table else 1
            full_rows[recognizer_label(name)] = np.stack(
                [table.get(str(f.path), np.zeros(dim, np.float32)) for f in kept_faces]).astype(np.float32)
    q_labels = [(kept_faces[i].gender, kept_faces[i].young) for i in split.queries]
    reports = {}
    for name, full in full_rows.items():
        groups = split.group_embeddings(full)
        reports[name] = attribute_group_report(split.query_embeddings(full), q_labels, groups, auc_mode="hard")
    return GroupProtocolResult(dataset, int(ok.sum()), int((~ok[used]).sum()), reports,
                               {"seed": seed, "queries": int(len(split.queries))})


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON (numbers rounded by the producer), creating folders."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, indent=2, default=lambda o: dataclasses.asdict(o)
                            if dataclasses.is_dataclass(o) else str(o)))
    return p


@dataclass
class EvaluationResult:
    """Everything ``perface evaluate`` prints and saves."""

    model: str
    trained_on: str
    triplets: TripletReport | None = None
    groups: list[GroupProtocolResult] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def to_markdown(self) -> str:
        parts = [f"Model: {self.model}. Trained on: {self.trained_on}."]
        if self.triplets is not None:
            ext = self.notes.get("triplets_from")
            where = "held-out split" if ext is None else f"triplets from {ext}"
            parts.append(f"### Triplet accuracy ({where}, 95% bootstrap CI over triplets)\n\n"
                         + self.triplets.to_markdown())
        for g in self.groups:
            parts.append(f"### Attribute-group classification (Sec. 4.5): {g.dataset}\n\n" + g.to_markdown())
        return "\n\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "trained_on": self.trained_on,
                "triplets": self.triplets.to_dict() if self.triplets else None,
                "groups": [g.to_dict() for g in self.groups], "notes": self.notes}


def _labelled_sources(meta: dict[str, Any]) -> list[Any]:
    """The labelled datasets a saved model was trained on (from its training config), if any."""
    from perface.metric.train import config_from_dict

    if "config" not in meta:
        return []
    return list(config_from_dict(meta["config"]).data.labelled)


def external_triplets(path: str | Path, log=print) -> dict[str, TripletSet]:
    """Subsets of a triplet set given by the user: SimCelebA (a folder with ``triplet_answers.csv``, or its
    archive) as D1 and D2, or an ``anchor,positive,negative[,weight]`` CSV as one subset."""
    from perface.datasets import load_csv_triplets, load_simceleba
    from perface.face.io import InputError

    p = Path(path)
    if not p.exists():
        raise InputError(p, "triplet set not found")
    if p.is_file() and p.suffix.lower() == ".csv":
        ts = load_csv_triplets(p)
        log(f"{p}: {len(ts)} triplets (CSV)")
        return {"all": ts}
    ts = load_simceleba(p)
    log(f"{p}: {len(ts)} SimCelebA-format triplets")
    return {"D1": ts.d1(), "D2": ts.d2()}


def run_evaluation(
    model_name: str = "default",
    triplets: bool = True,
    data_root: str | Path | None = None,
    utkface: str | Path | None = None,
    celeba: str | Path | None = None,
    cache_dir: str | Path | None = ".cache/perface",
    seed: int = 0,
    log=print,
    min_age: int | None = None,
    triplets_from: str | Path | None = None,
    recognizers: Sequence[str] = (),
) -> EvaluationResult:
    """Evaluate a saved model: triplets on its own held-out split (or on ``triplets_from``: a SimCelebA folder or
    archive, D1 and D2, or an ``anchor,positive,negative`` CSV), Sec. 4.5 on labelled folders (with each of
    ``recognizers``' identity embeddings as a baseline beside dlib's)."""
    from perface.datasets import in_training_part, load_celeba, load_utkface
    from perface.face.io import InputError
    from perface.metric.model import load
    from perface.metric.train import config_from_dict, make_splits

    model = load(model_name)
    meta = getattr(model, "metadata", {}) or {}
    cache = None if cache_dir is None else str(cache_dir)
    result = EvaluationResult(model_name, meta.get("trained_on", "unknown"))
    if triplets and triplets_from is not None:
        result.triplets = triplet_protocol(model, external_triplets(triplets_from, log), cache_dir=cache,
                                           split="external")
        result.notes["triplets_from"] = str(triplets_from)
        result.notes["split"] = f"triplets from {triplets_from} (none of the model's own split)"
    elif triplets:
        if "config" not in meta:
            raise InputError(model_name, "model has no training config in its metadata: cannot rebuild its split")
        cfg = config_from_dict(meta["config"])
        data = cfg.data if data_root is None else dataclasses.replace(cfg.data, root=str(data_root))
        if not Path(data.root).exists():
            raise InputError(data.root, "training data folder not found (pass --data-root)")
        log(f"rebuilding the held-out split from {data.root}")
        splits = make_splits(data)
        subsets = {"all": splits.test}
        if data.kind == "omi":
            subsets["gender-matched"] = gender_matched(splits.test, data.root)
            result.notes["split"] = "faces held out from training (20%); rating-derived triplets among them"
        else:
            subsets = {"D1": splits.test.d1(), "D2": splits.test.d2()}
        result.triplets = triplet_protocol(model, subsets, cache_dir=cache)
    for name, root, loader in (("UTKFace", utkface, load_utkface), ("CelebA", celeba, load_celeba)):
        if root is None:
            continue
        if not Path(root).exists():
            raise InputError(root, "folder not found")
        faces = loader(root)
        label = name
        trained = [c for c in _labelled_sources(meta) if c.kind == name.lower()]
        if trained:  # a model trained on this dataset's labels is scored on its held-out part only
            fraction = max(c.train_fraction for c in trained)
            faces = [f for f in faces if not in_training_part(f, fraction)]
            label = f"{name}, held-out part ({1 - fraction:.0%}; the model trained on the rest)"
        if min_age is not None:
            faces = [f for f in faces if f.age is None or f.age >= min_age]
            label = f"{label} (age >= {min_age} where known)"
        log(f"attribute groups on {label} ({root})")
        result.groups.append(attribute_group_protocol(model, faces, label, cache_dir=cache, seed=seed,
                                                      recognizers=recognizers))
    return result
