"""Issue 18: the metric's embedding joined with FaceRes's identity embedding, screened on the library's OMI folds.

The metric groups CelebA's gender below FaceRes's own identity embedding (0.961 against 0.971), and the gender-first
label triplets that raised the adults' figures chose donors closer to the person (round 49). Joining a weighted,
unit-length copy of FaceRes's identity output (its ``head`` level, already among the metric's features) to the unit
embedding, ``[e, g f] / sqrt(1 + g^2)``, gives ``cos = (cos_e + g^2 cos_f) / (1 + g^2)``: one cosine that also
follows identity, so step 2's least similar donors are also less like the person for an identity network.

The library's ``model.second_identity_weight`` does this join (and can train with it); ``run`` and ``heldout`` apply
it after training to a copy of a trained model (``joined_copy``).

``run GAMMAS [folds]``: the shipped recipe's fold models (``gender_grouping.fold_model``, label margin 0.3), each
gamma scored on the fold's OMI validation triplets and Sec. 4.5 on UTKFace's 15-30% part (groups of 30, all ages and
adults), from cached features only. ``summary``: the means over folds. ``heldout GAMMA``: the shipped default joined
at that gamma, scored held out as ``perface evaluate`` scores it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import REPO, shared_data  # noqa: E402
from gender_grouping import _record, fold_model  # noqa: E402
from metric_signals import CACHE, cv_validation_faces  # noqa: E402

RUNS = REPO / "runs" / "identity_mix"
FACERES_ID = 1024  # the last columns of the pooled features: FaceRes's global pooling, its identity embedding


def joined_copy(model, gamma: float, centre_paths: list[str] | None = None):
    """``model`` with FaceRes's identity output joined at weight ``gamma`` after training: the library's
    ``second_identity_weight`` on a copy that keeps the model's head weights, centred on the training faces'
    ``centre_paths`` (none: not centred)."""
    import dataclasses

    from perface.metric.features import build_feature_bank
    from perface.metric.model import PerFaceModel
    from perface.metric.train import bank_features

    cfg = dataclasses.replace(model.config, second_identity_weight=gamma,
                              second_identity_dim=FACERES_ID if gamma else 0)
    joined = PerFaceModel(cfg).eval()
    joined.load_state_dict(model.state_dict(), strict=False)  # all but the centre, which the model does not have
    joined.model_id = model.model_id
    if gamma and centre_paths:
        bank = build_feature_bank(joined, centre_paths, cache_dir=CACHE, progress=False)
        rows = np.arange(len(bank))
        joined.head.set_joined_centre(bank_features(joined, bank, rows, np.zeros_like(rows)))
    return joined


def run(gammas: str = "0,0.25,0.5,0.75,1", folds: str = "0,1,2,3,4", centred: str = "no") -> None:
    """Each gamma on each fold: OMI validation triplets and Sec. 4.5 on the validation faces."""
    from perface.metric.features import build_feature_bank
    from perface.metric.train import accuracy_from_embeddings, bank_embeddings, triplet_rows

    torch.set_num_threads(2)
    RUNS.mkdir(parents=True, exist_ok=True)
    val = cv_validation_faces()
    for k in (int(x) for x in folds.split(",")):
        model, res = fold_model(k, label_margin=0.3)
        # centred: on the fold's training images (its OMI faces and label-triplet photos), as training would centre it
        centre = (sorted({str(p) for t in res.splits.train for p in (t.reference, t.a, t.b)})
                  if centred == "yes" else None)
        paths = sorted({str(p) for t in res.splits.val for p in (t.reference, t.a, t.b)})
        bank = build_feature_bank(model, paths, cache_dir=CACHE, progress=False)
        rows, _ = triplet_rows(res.splits.val, bank)
        for g in (float(x) for x in gammas.split(",")):
            joined = joined_copy(model, g, centre)
            row = {"fold": k, "gamma": g, "centred": centred == "yes",
                   "omi_cv": accuracy_from_embeddings(bank_embeddings(joined, bank), rows)}
            _record(row, joined, val, results=RUNS / "results.jsonl")


def trained(weights: str = "0.5,1", folds: str = "0,1,2,3,4") -> None:
    """The join in training (``model.second_identity_weight``): fold models of the shipped recipe trained with it,
    scored as ``run`` scores the post-hoc join (rows with ``"trained": true``)."""
    torch.set_num_threads(2)
    RUNS.mkdir(parents=True, exist_ok=True)
    val = cv_validation_faces()
    for w in (float(x) for x in weights.split(",")):
        for k in (int(x) for x in folds.split(",")):
            model, res = fold_model(k, label_margin=0.3,
                                    model={"second_identity_weight": w, "second_identity_dim": FACERES_ID})
            row = {"fold": k, "gamma": w, "centred": True, "trained": True, "omi_cv": res.final_val_accuracy}
            _record(row, model, val, results=RUNS / "results.jsonl")


def heldout(gamma: str = "0.25") -> None:
    """The shipped default with its FaceRes identity joined at ``gamma`` after training (centred on its OMI training
    faces), scored as ``perface evaluate`` scores the default: OMI test triplets, Sec. 4.5 on UTKFace's held-out part
    (all ages; adults) and CelebA. The joined copy is saved to runs/identity_mix/heldout_g{gamma}_model; tables to
    runs/identity_mix/heldout_g{gamma}.{all,adults}.json."""
    from perface.evaluation.protocols import run_evaluation, write_json
    from perface.metric.config import read_model_folder
    from perface.metric.model import load
    from perface.metric.train import load_config, make_splits

    torch.set_num_threads(2)
    g = float(gamma)
    splits = make_splits(load_config(REPO / "configs" / "default.yaml").data)
    omi = sorted({str(p) for t in splits.train for p in (t.reference, t.a, t.b) if "/omi/" in str(p)})
    folder = joined_copy(load("default"), g, omi).save(RUNS / f"heldout_g{g:g}_model", overwrite=True,
                                                         metadata=read_model_folder("default")[1]["metadata"])
    data = shared_data()
    res = run_evaluation(str(folder), triplets=True, data_root=data / "omi", utkface=data / "utkface" / "images",
                         celeba=data / "celeba", cache_dir=CACHE, recognizers=())
    adults = run_evaluation(str(folder), triplets=False, utkface=data / "utkface" / "images", cache_dir=CACHE,
                            min_age=18, recognizers=())
    write_json(RUNS / f"heldout_g{g:g}.all.json", res.to_dict())
    write_json(RUNS / f"heldout_g{g:g}.adults.json", adults.to_dict())
    print(res.triplets.to_markdown())
    for grp in [*res.groups, *adults.groups]:
        print(grp.to_markdown())


def summary() -> None:
    """Means over folds per (trained, gamma, centred), the last row of each fold."""
    rows = [json.loads(x) for x in (RUNS / "results.jsonl").read_text().splitlines()]
    last = {(r.get("trained", False), r["gamma"], r["centred"], r["fold"]): r for r in rows}  # a rerun replaces a row
    rows = list(last.values())
    keys = sorted({(r.get("trained", False), r["gamma"], r["centred"]) for r in rows})
    print("trained gamma centred folds omi_cv | val all gender/age | val adults gender/age")
    for t, g, c in keys:
        sel = [r for r in rows if (r.get("trained", False), r["gamma"], r["centred"]) == (t, g, c)]
        m = {k: np.mean([r[k] if k == "omi_cv" else r[k.split(":")[0]][k.split(":")[1]][0] for r in sel])
             for k in ("omi_cv", "utk_val_all:gender", "utk_val_all:age", "utk_val_adults:gender",
                       "utk_val_adults:age")}
        print(f"{t!s:5} {g:5g} {c!s:5} {len(sel)} {m['omi_cv']:.4f} | {m['utk_val_all:gender']:.3f} / "
              f"{m['utk_val_all:age']:.3f} | {m['utk_val_adults:gender']:.3f} / {m['utk_val_adults:age']:.3f}")


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
