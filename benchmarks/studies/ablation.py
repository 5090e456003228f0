"""Ablation of the default model's options (colour layout, auxiliary attribute loss, more triplets).

Usage: python benchmarks/studies/ablation.py '{"name": {overrides}, ...}'  (override keys as in configs/default.yaml;
unspecified keys take TrainConfig's defaults, 25 epochs, patience 6). Prints validation and held-out test
triplet accuracy of each variant next to the dlib identity baseline on the same test triplets.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from perface.metric.features import build_feature_bank
from perface.metric.model import load
from perface.metric.train import accuracy_from_embeddings, bank_embeddings, config_from_dict, train, triplet_rows

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _common
from _common import REPO, shared_data  # noqa: E402


def run(name: str, over: dict) -> None:
    base: dict = {"data": {"root": str(shared_data() / "omi")}, "optim": {"epochs": 25, "patience": 6},
                  "out": str(REPO / "runs" / f"ablation_{name}"), "cache_dir": str(REPO / ".cache" / "perface")}
    for k, v in over.items():
        if isinstance(v, dict):
            base.setdefault(k, {}).update(v)
        else:
            base[k] = v
    cfg = config_from_dict(base)
    r = train(cfg, progress=False, resume=False, log=lambda s: None)
    m = load(r.model_dir)
    paths = sorted({str(p) for t in r.splits.test for p in (t.reference, t.a, t.b)})
    bank = build_feature_bank(m, paths, cache_dir=cfg.cache_dir, progress=False)
    rows, _ = triplet_rows(r.splits.test, bank)
    acc = accuracy_from_embeddings(bank_embeddings(m, bank), rows)
    ident = accuracy_from_embeddings(bank.identity, rows)
    print(f"{name:12s} val {r.best_val_accuracy:.4f} (epoch {r.best_epoch})  test {acc:.4f}  "
          f"dlib identity {ident:.4f}  {r.seconds:.0f}s", flush=True)


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    for variant, overrides in json.loads(sys.argv[1]).items():
        run(variant, overrides)
