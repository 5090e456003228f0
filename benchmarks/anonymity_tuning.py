"""Anonymizer settings compared on a *tuning* draw of CelebA probes (seed 1), never on the reported seed-0 draw.

Seed 1 draws other probe photos (and other donors) than the `anonymity` section's seed 0, so a setting chosen
here is not tuned on the figures reported there. Writes runs/anonymity_tuning.json and the
`anonymity_tuning` section of docs/benchmarks.md. About 10 minutes on 2 cores.
"""

from __future__ import annotations

import json

from _common import REPO, shared_data, write_fragment

from perface.anonymity import evaluate_anonymization
from perface.protocols import write_json

SEED = 1
VARIANTS = {  # name: (step-1 rule, ClassicSwapper options)
    "`max_yaw_deg` 32 (the default until the fourth session)": ("metric", {"max_yaw_deg": 32.0}),
    "**`max_yaw_deg` 40 (the default now)**": ("metric", {}),
    "`--group-by hybrid`, `max_yaw_deg` 32": ("hybrid", {"max_yaw_deg": 32.0}),
}

# Measured the same way with the previous default model (before the fourth session's retrain) and code that
# was not kept; recorded here so the attempt is not repeated blindly.
DROPPED = """Two attempts to lower LBPH re-ID, measured on this draw with the previous default model (plain swap:
LBPH 18.7%), both dropped and their code not kept: replacing the region up to 15% or 30% of the face size
*past the jaw line*, the jaw outline moved to the donor's (LBPH 17.3% and 19.3%; dlib 1.3% and 0.7%); and
softly *blurring the context* (hair, ears, background within 1.3x the box) around the swapped face (Gaussian
sigma 2% or 4% of the box width: LBPH 17.3% and 13.3%, while gender kept fell to 93.3% and age group kept
from 94.7% to 88%). Neither comes near 5%."""


def main() -> None:
    root = shared_data() / "celeba"
    results = {}
    for name, (group_by, options) in VARIANTS.items():
        res = evaluate_anonymization(root, n_probes=150, seed=SEED, progress=False, group_by=group_by,
                                     swapper_options=options, log=lambda m: None)
        results[name] = {"rates": res.rates, "totals": res.totals}
        print(name, json.dumps(res.rates["anonymized"]), flush=True)
    write_json(REPO / "runs" / "anonymity_tuning.json", results)
    rows = ["| variant | faces blurred instead | detected | gender kept (built-in predictor) | dlib re-ID "
            "| LBPH re-ID |",
            "|---|---|---|---|---|---|"]
    for name, r in results.items():
        a, t = r["rates"]["anonymized"], r["totals"]
        rows.append(f"| {name} | {t['hidden_by_fallback']} of {t['found']} | {a['detected']:.1%} | "
                    f"{a['gender_kept']:.1%} | {a['reid_dlib']:.1%} | {a['reid_lbph']:.1%} |")
    body = (f"CelebA, 150 probes drawn with seed {SEED} (the `anonymity` section reports seed 0), default model and "
            "bundled gallery.\n\n" + "\n".join(rows) + "\n\n"
            "Faces turned 32-40 degrees get a swap instead of a blur at 40; a visual check of the ten faces that "
            "changed showed swaps of the same quality as frontal ones, so 40 became the default.\n\n" + DROPPED)
    write_fragment("anonymity_tuning", "Anonymizer settings on a tuning draw (issue 5)", body)


if __name__ == "__main__":
    main()
