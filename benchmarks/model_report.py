"""The default model's report: held-out triplet accuracy vs baselines, and Sec. 4.5 on UTKFace and CelebA.

Runs `perface evaluate` (every face network's identity embedding a Sec. 4.5 baseline) on the shipped model with the
shared data and writes the `model` and `groups` sections of docs/benchmarks.md (plus runs/model_report.json with every
number).
"""

from __future__ import annotations

import json

from _common import REPO, shared_data, write_fragment

from perface.evaluation.protocols import run_evaluation, write_json
from perface.evaluation.recognizer_baselines import BASELINE_RECOGNIZERS


def main() -> None:
    data = shared_data()
    res = run_evaluation("default", triplets=True, data_root=data / "omi", utkface=data / "utkface" / "images",
                         celeba=data / "celeba", cache_dir=REPO / ".cache" / "perface",
                         recognizers=BASELINE_RECOGNIZERS)
    write_json(REPO / "runs" / "model_report.json", res.to_dict())
    meta_path = REPO / "src" / "perface" / "models" / "perface-default" / "config.json"
    saved = json.loads(meta_path.read_text())
    meta, arch = saved["metadata"], saved["model"]
    nets = arch["backbone"] + (f" + {arch['second_backbone']} (views {arch['second_views'] or arch['views']})"
                               if arch.get("second_backbone") else "")
    picked = (f"{meta['best_epoch']} epochs, no validation split: settings chosen by 5-fold cross-validation, "
              "see the cross-validation section" if meta["best_val_accuracy"] is None else
              f"best epoch {meta['best_epoch']}, validation accuracy {meta['best_val_accuracy']:.4f}")
    body = (f"Model: `perface.load(\"default\")`, trained with `perface train --config configs/default.yaml` "
            f"({picked}, {meta['train_triplets']} training triplets; frozen features of {nets})."
            f"\n\nTrained on: {res.trained_on}. "
            "Test triplets are "
            "rating-derived too (a stand-in), among the 20% of OMI faces held out from training; "
            "'gender-matched' keeps triplets whose three faces share the anchor's side of the gender rating.\n\n"
            + res.triplets.to_markdown())
    write_fragment("model", "Default model: triplet accuracy on held-out faces (issue 4)", body)
    adults = run_evaluation("default", triplets=False, utkface=data / "utkface" / "images",
                            cache_dir=REPO / ".cache" / "perface", min_age=18,
                            recognizers=BASELINE_RECOGNIZERS)
    write_json(REPO / "runs" / "model_report_adults.json", adults.to_dict())
    groups = "\n\n".join(g.to_markdown() for g in [*res.groups, *adults.groups])
    write_fragment("groups", "Attribute-group classification, the paper's Sec. 4.5 (issue 4)",
                   "Before = dlib identity embedding (cosine), after = the default PerFace model; the other face "
                   "networks' identity embeddings are baselines too (issue 18: PerFace should not fall below the "
                   "best of them). "
                   "Groups and queries are drawn with seed 0. UTKFace is shown twice: all ages (children make gender "
                   "hard for every method) and adults only (age >= 18), closer to the paper's CelebAMask-HQ "
                   "population.\n\n" + groups)


if __name__ == "__main__":
    main()
