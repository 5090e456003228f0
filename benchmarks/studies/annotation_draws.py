"""Issue 21: pool the held-out triplets of several `annotation_e2e.py` runs (different draws of faces) and give
each scorer's accuracy and the paired differences with 95% bootstrap intervals over all of them.

Why: one draw holds 155 triplets of faces the shipped model never saw, so a paired difference of +0.05 has an
interval about 0.1 wide; the draws (``--seed``) are independent, and their triplets can be pooled.

    python benchmarks/studies/annotation_draws.py WORK [WORK ...]   # the --work folders of finished runs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import shared_data  # noqa: E402
from annotation_e2e import BASELINE, heldout_outcomes, rating_space  # noqa: E402

IDENTITY, SHIPPED, FINETUNED = "head from the identity metric", "shipped model", "shipped model fine-tuned"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path, nargs="+")
    args = ap.parse_args()
    from perface.evaluation.measures import bootstrap_ci

    space, _ = rating_space(shared_data() / "omi")
    pooled: dict[str, list[np.ndarray]] = {}
    for work in args.work:
        models = {IDENTITY: work / "run-identity" / "model", SHIPPED: "default",
                  FINETUNED: work / "run-finetune" / "model"}
        out = heldout_outcomes(work, "heldout-shipped", work / "heldout-shipped-faces" / "labels.csv", space, models)
        line = ", ".join(f"{k} {v.mean():.3f}" for k, v in out.items())
        print(f"{work}: {len(out[BASELINE])} triplets: {line}; fine-tuned minus shipped "
              f"{(out[FINETUNED] - out[SHIPPED]).mean():+.3f}", flush=True)
        for k, v in out.items():
            pooled.setdefault(k, []).append(v)
    all_ = {k: np.concatenate(v) for k, v in pooled.items()}
    n = len(all_[BASELINE])
    print(f"\npooled: {n} triplets of {len(args.work)} draws")
    print("| scorer | accuracy (95% CI) | minus identity baseline | minus shipped model |")
    print("|---|---|---|---|")
    for k, v in all_.items():
        ci = bootstrap_ci(v, seed=0)
        d = bootstrap_ci(v - all_[BASELINE], seed=0) if k != BASELINE else None
        s = bootstrap_ci(v - all_[SHIPPED], seed=0) if k in (FINETUNED, IDENTITY) else None
        fmt = (lambda c: f"{c.value:+.3f} ({c.low:+.3f} to {c.high:+.3f})")  # noqa: E731
        print(f"| {k} | {ci.value:.3f} ({ci.low:.3f}-{ci.high:.3f}) | {fmt(d) if d else ''} | {fmt(s) if s else ''} |")


if __name__ == "__main__":
    main()
