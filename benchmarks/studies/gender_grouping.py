"""Issue 18: two ways to raise the Sec. 4.5 gender figure on adults, screened on the library's OMI folds.

1. ``run``: the attribute head's gender column fitted on real photos too. The shipped attribute head is a ridge
map of the frozen features to the 17 rating coordinates of the OMI training faces, all synthetic, so on real photos
its gender coordinate is read across a domain gap. Here that one column is refitted on the OMI training faces *and*
labelled UTKFace photos, whose binary gender is mapped to the coordinate of the OMI faces rated on that side (the
two modes of the rating); the other columns stay as they are. Optionally the column is also scaled (``g``), which
weighs gender more in every distance, OMI's included.

2. ``gender_first SHARES [folds] [min_age] [window]``: label triplets that rank gender over the age group
(``LabelTripletConfig.gender_first``: a positive of the anchor's gender in the other age group, a negative of the
other gender in the anchor's age group), as that share of the 5,000.

Both train the screen's fold models (the shipped recipe, 5,000 label triplets from UTKFace's first 15%; kept in
runs/gender_grouping/), then score the fold's OMI validation triplets and Sec. 4.5 on UTKFace's 15-30% part (groups
of 30, all ages and adults). Real photos for any fit come from the first 15% only, so the validation faces take no
part in one. ``write`` then writes the ``metric_gender_first`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import REPO, shared_data  # noqa: E402
from metric_signals import CACHE, CV_LABEL_FRACTION, bank_embedder, cv_validation_faces, group_scores  # noqa: E402

from perface.datasets import LabelTripletConfig, in_training_part, load_utkface, split_labelled  # noqa: E402

RUNS = REPO / "runs" / "gender_grouping"
GENDER, AGE = 1, 0  # columns of APPEARANCE_ATTRIBUTES
# (name, alpha: weight of each real photo's row against an OMI face's, g: the gender column's scale)
VARIANTS = [("shipped", None, 1.0), ("refit a0.5", 0.5, 1.0), ("refit a1", 1.0, 1.0), ("refit a2", 2.0, 1.0),
            ("refit a1 g1.5", 1.0, 1.5), ("refit a1 g2", 1.0, 2.0), ("scale g1.5", None, 1.5)]


def label_faces() -> list:
    """UTKFace's first 15% (the screen's label-triplet part): the real photos the refit may use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        utk = load_utkface(shared_data() / "utkface" / "images")
    part, _ = split_labelled(utk, 0.3)
    return [f for f in part if in_training_part(f, CV_LABEL_FRACTION)]


def fold_model(k: int, gender_first: float = 0.0, min_age: int | None = None, window: int | None = None,
               balanced: bool = False, label_margin: float | None = None, model: dict | None = None,
               load_model: bool = True):
    """The screen's fold-k model of the shipped recipe (trained once, then resumed from its run folder), with the
    given label-triplet options (:class:`LabelTripletConfig`) and label margin (``loss.label_margin``)."""
    from perface.metric.model import load
    from perface.metric.train import load_config, train

    base = load_config(REPO / "configs" / "default.yaml")
    labelled = (LabelTripletConfig(root=str(shared_data() / "utkface" / "images"), train_fraction=CV_LABEL_FRACTION,
                                   n_triplets=5000, gender_first=gender_first, min_age=min_age,
                                   gender_first_window=window, balanced=balanced),)
    tag = (f"gf{gender_first:g}" if gender_first else "") + (f"_min{min_age}" if min_age is not None else "") + (
        f"_w{window}" if window is not None else "") + ("_balanced" if balanced else "") + (
        f"_m{label_margin:g}" if label_margin is not None else "") + "".join(
        f"_{key}{'-'.join(map(str, val)) if isinstance(val, tuple) else val}" for key, val in (model or {}).items())
    out = RUNS / tag / f"fold{k}" if tag else RUNS / f"fold{k}"
    cfg = dataclasses.replace(
        base, data=dataclasses.replace(base.data, cv_folds=5, cv_fold=k, labelled=labelled),
        optim=dataclasses.replace(base.optim, keep="last"), out=str(out), cache_dir=str(CACHE),
        loss=dataclasses.replace(base.loss, label_margin=label_margin),
        model=dataclasses.replace(base.model, **(model or {})))
    res = train(cfg, progress=False, log=lambda s: None)
    return (load(res.model_dir) if load_model else None), res


def _inputs(model, paths: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Features of the images found in the bank and of their mirror images (as the head reads them), and their paths."""
    from perface.metric.features import build_feature_bank
    from perface.metric.train import _head_inputs

    bank = build_feature_bank(model, paths, cache_dir=CACHE, progress=False)
    kept = [p for p in paths if p in bank.index]
    feats, mirrored = _head_inputs(model, bank, np.array([bank.index[p] for p in kept], dtype=np.int64))
    return feats, mirrored, kept


@torch.no_grad()
def refit(model, res, utk, alpha: float | None, g: float, ridge: float = 1000.0) -> None:
    """Refit the gender column on OMI training faces plus ``utk`` photos (row weight ``alpha``), then scale it."""
    space = res.splits.train_space
    coords = space.features()
    omi_paths = [str(shared_data() / "omi" / "images" / f"{f}.jpg") for f in space.face_ids]
    h = model.head
    raw_o, raw_mo, kept = _inputs(model, omi_paths)
    f_o, m_o = (raw_o - h.feat_mean) / h.feat_std, (raw_mo - h.feat_mean) / h.feat_std
    y_o = torch.tensor([coords[space.face_ids.index(Path(p).stem), GENDER] for p in kept], dtype=torch.float64)
    w = h.attribute.weight
    if alpha is not None:
        # the two modes of the OMI gender coordinate; which is male is read from the current column on real photos
        c = y_o.numpy()
        lo, hi = c.min(), c.max()
        for _ in range(20):  # 2-means in one dimension
            side = np.abs(c - lo) > np.abs(c - hi)
            lo, hi = c[~side].mean(), c[side].mean()
        raw_u, raw_mu, kept_u = _inputs(model, [str(f.path) for f in utk])
        f_u, m_u = (raw_u - h.feat_mean) / h.feat_std, (raw_mu - h.feat_mean) / h.feat_std
        kept_set = set(kept_u)
        male = torch.tensor([f.gender == "male" for f in utk if str(f.path) in kept_set])
        pred = 0.5 * (f_u @ w[GENDER] + m_u @ w[GENDER])
        male_hi = float(pred[male].mean()) > float(pred[~male].mean())
        y_u = torch.where(male, hi if male_hi else lo, lo if male_hi else hi).double()
        s = float(np.sqrt(alpha))
        x = torch.cat([f_o, m_o, s * f_u, s * m_u]).double()
        y = torch.cat([y_o, y_o, s * y_u, s * y_u])
        a = torch.linalg.solve(x @ x.T + ridge * torch.eye(len(x), dtype=x.dtype), y)
        w[GENDER] = (x.T @ a).float()
    w[GENDER] *= g
    h.set_attribute_radius([(raw_o, raw_mo)])


def _record(row: dict, model, val: list, embed=None, results: Path = RUNS / "results.jsonl") -> None:
    """Add Sec. 4.5 on the validation faces (all ages, adults) to ``row``; print it and append it to the results.
    ``embed``: paths -> embeddings (default: the model's, from the cached features)."""
    embed = embed or bank_embedder(model)
    for label, faces in (("utk_val_all", val), ("utk_val_adults", [f for f in val if f.age >= 18])):
        row[label] = group_scores(embed, faces, per_group=30, n_queries=None)
    print(json.dumps(row), flush=True)
    with results.open("a") as f:
        f.write(json.dumps(row) + "\n")


def run(folds: str = "0,1,2,3,4") -> None:
    """Each variant on each fold: OMI validation triplets and Sec. 4.5 on UTKFace's 15-30% part."""
    import copy

    from perface.metric.features import build_feature_bank
    from perface.metric.train import accuracy_from_embeddings, bank_embeddings, triplet_rows

    torch.set_num_threads(2)
    RUNS.mkdir(parents=True, exist_ok=True)
    utk = label_faces()
    val = cv_validation_faces()
    for k in (int(x) for x in folds.split(",")):
        model, res = fold_model(k)
        paths = sorted({str(p) for t in res.splits.val for p in (t.reference, t.a, t.b)})
        for name, alpha, g in VARIANTS:
            m = copy.deepcopy(model)
            refit(m, res, utk, alpha, g)
            bank = build_feature_bank(m, paths, cache_dir=CACHE, progress=False)
            va_rows, _ = triplet_rows(res.splits.val, bank)
            row = {"fold": k, "variant": name, "alpha": alpha, "g": g,
                   "omi_cv": accuracy_from_embeddings(bank_embeddings(m, bank), va_rows)}
            _record(row, m, val)


def gender_first(shares: str = "0.25,0.5", folds: str = "0,1,2,3,4", min_age: str = "none",
                 window: str = "none", balanced: str = "no", label_margin: str = "none") -> None:
    """Fold models whose label triplets rank gender over the age group (each share; from faces at least
    ``min_age`` old when given), scored as ``run`` scores."""
    age = None if min_age == "none" else int(min_age)
    win = None if window == "none" else int(window)
    margin = None if label_margin == "none" else float(label_margin)
    torch.set_num_threads(2)
    val = cv_validation_faces()
    for share in (float(x) for x in shares.split(",")):
        for k in (int(x) for x in folds.split(",")):
            model, res = fold_model(k, share, age, win, balanced == "yes", margin)
            parts = [f"gender_first {share:g}" if share else "", f"min_age {age}" if age is not None else "",
                     f"window {win}" if win is not None else "", "balanced anchors" if balanced == "yes" else "",
                     f"label margin {margin:g}" if margin is not None else ""]
            name = ", ".join(p for p in parts if p)
            row = {"fold": k, "variant": name, "omi_cv": res.final_val_accuracy}
            _record(row, model, val)


def second_crop(margins: str = "0.1", folds: str = "0,1,2,3,4", gender_first: str = "0") -> None:
    """Fold models of the shipped recipe (label margin 0.3) whose FaceRes features come from its own recognizer crop,
    the detector's box grown by each margin (``model.second_crop`` "box"), not dlib's aligned chip; optionally with
    that share of ``gender_first`` label triplets."""
    torch.set_num_threads(2)
    val = cv_validation_faces()
    share = float(gender_first)
    for margin in (float(x) for x in margins.split(",")):
        for k in (int(x) for x in folds.split(",")):
            model, res = fold_model(k, share, label_margin=0.3,
                                    model={"second_crop": "box", "second_views": (margin,)})
            row = {"fold": k, "variant": (f"gender_first {share:g}, " if share else "") +
                   f"label margin 0.3, FaceRes on box + {margin:g}", "omi_cv": res.final_val_accuracy}
            _record(row, model, val)


def second_crop_both(margin: str = "0.1", folds: str = "0,1,2,3,4") -> None:
    """Fold models of the shipped recipe (label margin 0.3, FaceRes on dlib's chip) with FaceRes's features of its own
    recognizer crop (box + ``margin``) appended: two FaceRes runs per embedding. A screen through the patched bank of
    metric_signals (the library's model has one crop kind per backbone)."""
    from metric_signals import _patch_appended, patched_model

    import perface.metric.features as feat_mod
    from perface.metric.model import PerFaceModel
    from perface.metric.train import load_config

    torch.set_num_threads(2)
    base = load_config(REPO / "configs" / "default.yaml").model
    box = PerFaceModel(dataclasses.replace(base, second_crop="box", second_views=(float(margin),)))
    plain_build = feat_mod.build_feature_bank

    def box_features(paths: list[str]) -> np.ndarray:
        bank = plain_build(box, paths, cache_dir=CACHE, progress=False)
        assert bank.paths == list(paths), "the box bank found faces in other images"
        return bank.pooled[:, 0, -box.second_view_dim:]

    _patch_appended(box.second_view_dim, box_features)
    val = cv_validation_faces()
    for k in (int(x) for x in folds.split(",")):
        _, res = fold_model(k, label_margin=0.3, model={"second_views": (0.25,), "second_flip": False},
                            load_model=False)  # model given: a run folder of its own
        model = patched_model(res.model_dir)
        row = {"fold": k, "variant": f"label margin 0.3, FaceRes on dlib's chip and on box + {float(margin):g}",
               "omi_cv": res.final_val_accuracy}
        _record(row, model, val)


KEYS = ("omi_cv", "utk_val_all:gender", "utk_val_all:age", "utk_val_adults:gender", "utk_val_adults:age")


def _value(row: dict, key: str) -> float:
    """A row's figure by ``KEYS`` name: the OMI CV accuracy, or a Sec. 4.5 accuracy (``set:task``)."""
    if key == "omi_cv":
        return row["omi_cv"]
    part, task = key.split(":")
    return row[part][task][0]


def _rows() -> list[dict]:
    return [json.loads(line) for line in (RUNS / "results.jsonl").read_text().splitlines()]


def summary() -> None:
    """Mean over folds per variant."""
    rows = _rows()
    for name in dict.fromkeys([v[0] for v in VARIANTS] + [x["variant"] for x in rows]):
        r = [x for x in rows if x["variant"] == name]
        if r:
            means = "  ".join(f"{k} {np.mean([_value(x, k) for x in r]):.4f}" for k in KEYS)
            print(f"{name:16s} folds {len(r)}  " + means)


def write() -> None:
    """The ``metric_gender_first`` section of docs/benchmarks.md: every variant's fold means and folds."""
    from _common import write_fragment

    rows = _rows()
    lines = ["| variant | folds | OMI CV | UTK val gender, all ages | age group, all ages | gender, adults | "
             "age group, adults | adults' gender by fold |", "|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(x["variant"] for x in rows):
        r = sorted((x for x in rows if x["variant"] == name), key=lambda x: x["fold"])
        means = " | ".join(f"{np.mean([_value(x, k) for x in r]):.{4 if k == 'omi_cv' else 3}f}" for k in KEYS)
        folds = ", ".join(f"{_value(x, 'utk_val_adults:gender'):.3f}" for x in r)
        lines.append(f"| {name} | {len(r)} | {means} | {folds} |")
    write_fragment(
        "metric_gender_first", "Gender over the age group: label triplets and the attribute head (issue 18)",
        "Script: `benchmarks/studies/gender_grouping.py run`, `gender_first SHARES FOLDS MIN_AGE WINDOW`, then "
        "`write`. The shipped recipe trained on the library's 5 OMI folds with 5,000 UTKFace label triplets from the "
        "first 15% of UTKFace's files (the screen of section `metric_label_triplets`); OMI CV on the fold's "
        "held-out faces; Sec. 4.5 validation on the next 15% (groups of 30 per cell, every other face a query; "
        "intervals about +-0.03). `shipped`: the recipe shipped until 2026-12-06 16:50 (the default since is its "
        "`label margin 0.3` row). `refit aA gG`: the fold model's attribute-head "
        "gender column fitted again on its OMI training faces plus the label part's photos (their label mapped "
        "to the mean coordinate of the OMI faces on that side of the rating), each photo weighted A, then "
        "scaled by G. `gender_first S`: that share of the label triplets has a positive of the anchor's gender "
        "in the other age group and a negative of the other gender in its age group (`min_age`: from adults "
        "only; `window`: both within that many years of the anchor where such faces exist). `label margin M`: the "
        "label triplets trained with margin M, the OMI triplets with the paper's 0.1 (`loss.label_margin`). "
        "`FaceRes on box + M` (`second_crop 0.1`): FaceRes's features from its own recognizer crop, the detector's box "
        "grown by M (`model.second_crop` box), instead of dlib's 0.25 chip; `on dlib's chip and on box` "
        "(`second_crop_both`): both, two FaceRes runs a face. "
        "docs/model.md says what became of each.\n\n" + "\n".join(lines))


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
