"""FaceNet, a second never-consulted judge (issue 17): the defaults scored by every recognizer on the two tuning draws.

The reported draw (seed 0) is ``benchmarks/anonymity.py swap blur``. This runs the same protocol on the tuning draws
(seeds 1 and 2: other probes, other donors) with the recognizers of today, FaceNet included, and writes
runs/anonymity_seed{S}_facenet.json; ``report`` prints every network's rank-1 and FAR-1% verification per draw and
summed over the three draws. About 15 minutes a draw on 2 cores.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _common
from _common import REPO, shared_data  # noqa: E402

from perface.evaluation.anonymity import evaluate_anonymization, fit_gender_judge  # noqa: E402
from perface.evaluation.protocols import write_json  # noqa: E402


def _path(seed: int) -> Path:
    return REPO / "runs" / ("anonymity_swap.json" if seed == 0 else f"anonymity_seed{seed}_facenet.json")


def run(*seeds: str) -> None:
    judge = fit_gender_judge(shared_data() / "utkface" / "images", progress=False)
    for s in (int(x) for x in seeds or ("1", "2")):
        res = evaluate_anonymization(shared_data() / "celeba", n_probes=150, seed=s, progress=False,
                                     gender_judge=judge)
        write_json(_path(s), res.to_dict())
        print(f"seed {s} written", flush=True)


def report() -> None:
    rows: dict[str, list[tuple[int, int, int]]] = {}
    for s in (0, 1, 2):
        if not _path(s).exists():
            continue
        d = json.loads(_path(s).read_text())
        for name, r in d["rates"]["recognizers"].items():
            if name == "lbph":
                continue
            rows.setdefault(name, []).append((r["rank1_anonymized"]["k"], r["verified_far_1e-2"]["k"],
                                              r["rank1_anonymized"]["n"]))
            consulted = "yes" if r["consulted"] else "**no**"
            print(f"| seed {s} | {name} | {consulted} | {r['rank1_anonymized']['rate']:.1%} | "
                  f"{r['verified_far_1e-2']['rate']:.1%} |")
    for name, v in rows.items():
        n = sum(x[2] for x in v)
        print(f"| {len(v)} draws | {name} | rank-1 {sum(x[0] for x in v)}/{n} = {sum(x[0] for x in v) / n:.1%} | "
              f"verified {sum(x[1] for x in v)}/{n} = {sum(x[1] for x in v) / n:.1%} |")


if __name__ == "__main__":
    {"run": run, "report": report}[sys.argv[1]](*sys.argv[2:])
