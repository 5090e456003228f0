"""Anonymizer settings compared on a *tuning* draw of CelebA probes (seed 1), never on the reported seed-0 draw.

Seed 1 draws other probe photos (and other donors) than the `anonymity` section's seed 0, so a setting chosen
here is not tuned on the figures reported there. Writes runs/anonymity_tuning.json and the
`anonymity_tuning` section of docs/benchmarks.md. About 20 minutes on 2 cores; `--report-only` rewrites the section
from the saved results.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from perface.evaluation.anonymity import evaluate_anonymization, fit_gender_judge
from perface.evaluation.protocols import write_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _common
from _common import REPO, shared_data, write_fragment  # noqa: E402

SEED = 1
VARIANTS = {  # name: (step-1 rule, SelectConfig options, AnonymizeConfig options, ClassicSwapper options)
    "**the defaults now** (sharp donors only, hybrid step 1, age window 15 years, donor identity pre-screen 0.88, "
    "skin window 50)": ("hybrid", {}, {}, {}),
    "no skin window": ("hybrid", {}, {"max_skin_gap": None}, {}),
    "no donor identity pre-screen": ("hybrid", {}, {"donor_identity_max": None}, {}),
    "no age window": ("hybrid", {"max_age_gap": None}, {}, {}),
    "the paper's step 1 alone (`--group-by metric`)": ("metric", {}, {}, {}),
    "`--forehead 0.8` (the swapped region reaches twice as far above the brows)":
        ("hybrid", {}, {}, {"forehead": 0.8}),
    "`--forehead 1.2` (up to about the hairline)": ("hybrid", {}, {}, {"forehead": 1.2}),
}

# Measured on this draw with exploratory scripts while choosing the fifth session's defaults (the bundled gallery
# before it = donor gender and age from the offline predictor, every confidence accepted; after = OMI donors
# labelled by their raters, unclear genders skipped). Kept so the comparison is not repeated blindly.
EXPLORED = """| variant (step 1 `metric` unless named) | faces blurred instead | detected \
| gender kept (built-in predictor) | age group kept | gender kept (independent judge) | dlib re-ID | LBPH re-ID |
|---|---|---|---|---|---|---|---|
| previous gallery, no age window, no pre-screen (the fourth session's default) | 7 of 160 | 99.3% | 96.0% | 94.0% \
| 89.3% | 2.0% | 24.0% |
| rater-labelled gallery, no age window, no pre-screen | 5 of 160 | 100.0% | 96.0% | 92.0% | 90.7% | 2.7% | 24.7% |
| previous gallery + age window 15 | 7 of 160 | 99.3% | 96.0% | 97.3% | 88.0% | 4.0% | 21.3% |
| rater-labelled gallery + age window 15 | 5 of 160 | 100.0% | 94.0% | 96.0% | 90.7% | 4.7% | 24.0% |
| ... + donor identity pre-screen 0.85 | 17 of 160 | 94.7% | 91.3% | 91.3% | 86.7% | 1.3% | 23.3% |
| ... + identity check at 0.90 instead of 0.92 (no pre-screen) | 9 of 160 | 98.0% | 94.0% | 95.3% | 88.7% | 2.0% \
| 24.7% |
| the fifth session's defaults (hybrid, age window 15, pre-screen 0.88), gallery still holding the 106 blurry AVFS \
donors, no skin window | 6 of 160 | 100.0% | 99.3% | 96.0% | 96.0% | 4.0% | 24.0% |

What the rows say: every gender change left by step 1 `metric` (9 of 150 with the rater-labelled gallery and the
age window) was a face put in a group of the other gender, where no donor can keep it; `hybrid` removes those.
The age window (no toddler donors for adults) raised age-group agreement and the independent judge's gender
agreement with `hybrid`, and raised dlib re-ID: a donor of the same age is closer in identity. The re-identified
faces had donors with identity cosines of 0.84-0.92 to them (median 0.885, against 0.828 for the others), hence
the pre-screen at 0.88; 0.85 blurs too many faces (detection falls below 95%). (In these exploratory runs a
pre-screened donor still counted as one of the 8 tries; it no longer does, as in the table above.)

Sixth session: the bundled gallery now holds sharp donors only (the AVFS faces, blurry 160 px images, gave soft,
smeared swaps), and donors within 50 of the face's skin lightness are tried first. Against the fifth session's row
above, on this draw: LBPH re-ID 24.0% -> 20.0%, dlib 4.0% -> 2.7%, swaps with a large skin gap 26.8% -> 1.3%, but
the independent judge's gender agreement 96.0% -> 92.0% (94.0% with the sharp gallery and no skin window; 150
probes, so each point is 1.5 faces) and age group 96.0% -> 94.7%. Where the judge disagrees (12 faces with the
defaults, per-probe rows of a rerun): 8 are faces it reads as male before and female after, 9 of the donors come
from the male groups, and for 10 of the 11 swapped faces the built-in predictor still reads the face's gender (the
12th face was blurred). Two donors (848 and 263) account for 4 of the 12, and the skin window sent 3 faces to such
donors. It is not the smaller older groups (older women 56 -> 40 donors, older men 100 -> 77): one of the 12
donors is an older woman.

Two attempts to lower LBPH re-ID, measured on this draw with the previous default model (plain swap:
LBPH 18.7%), both dropped and their code not kept: replacing the region up to 15% or 30% of the face size
*past the jaw line*, the jaw outline moved to the donor's (LBPH 17.3% and 19.3%; dlib 1.3% and 0.7%); and
softly *blurring the context* (hair, ears, background within 1.3x the box) around the swapped face (Gaussian
sigma 2% or 4% of the box width: LBPH 17.3% and 13.3%, while gender kept fell to 93.3% and age group kept
from 94.7% to 88%). Neither comes near 5%. `max_yaw_deg` 40 (instead of 32) was chosen on this draw in the
fourth session: 7 instead of 17 faces blurred, swaps of the same quality on the ten faces that changed.

Seventh session, `--forehead` (the two rows at the end of the first table): on the reported draw the top two rows
of LBPH's cells (the upper 28 px of its 112 px crop: upper forehead, hairline, fringe, all above the swapped
region's top edge) re-identify 22.7% of the anonymized probes on their own, as much as the whole crop (section
`lbph_regions`). Raising that edge brings LBPH re-ID on this draw from 20.0% to 18.0% (0.8) and 11.3% (1.2, about
the hairline), with dlib 0.7% and the independent judge at 94.0%: every measured figure is as good as the
default's or better. What the figures do not show is how it looks. At 1.2 the donor's forehead skin is painted
over whatever covers the forehead: a fringe disappears, a cap's brim is cut by a skin-coloured patch, short hair
gets a bald patch. An adaptive edge (raised only as far as target and donor both show skin, found by walking the
central forehead upwards in bands compared with the skin just above the brows) kept the swaps natural, but stayed
at 0.4 in 234 of 282 swap attempts and left LBPH at 21.3%; its code was not kept. What LBPH still matches is the
hair itself, so the default stays 0.4, and `--forehead 1.2` is there for users who put anonymity before a natural
hairline."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the section from the saved results (e.g. after editing EXPLORED)")
    args = ap.parse_args()
    saved = REPO / "runs" / "anonymity_tuning.json"
    if args.report_only:
        results = json.loads(saved.read_text())
    else:
        root = shared_data() / "celeba"
        judge = fit_gender_judge(shared_data() / "utkface" / "images", progress=False)
        results = {}
        for name, (group_by, select_options, anonymize_options, swapper_options) in VARIANTS.items():
            res = evaluate_anonymization(root, n_probes=150, seed=SEED, progress=False, group_by=group_by,
                                         select_options=select_options, anonymize_options=anonymize_options,
                                         swapper_options=swapper_options,
                                         gender_judge=judge, log=lambda m: None)
            results[name] = {"rates": res.rates, "totals": res.totals}
            print(name, json.dumps(res.rates["anonymized"]), flush=True)
        write_json(saved, results)
    rows = ["| variant | faces blurred instead | detected | gender kept (built-in predictor) | age group kept "
            "| gender kept (independent judge) | dlib re-ID | LBPH re-ID | large skin gap (swapped faces) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        a, t = r["rates"]["anonymized"], r["totals"]
        rows.append(f"| {name} | {t['hidden_by_fallback']} of {t['found']} | {a['detected']:.1%} | "
                    f"{a['gender_kept']:.1%} | {a['age_group_kept']:.1%} | {a['gender_kept_judge']:.1%} | "
                    f"{a['reid_dlib']:.1%} | {a['reid_lbph']:.1%} | {a.get('skin_gap_large', float('nan')):.1%} |")
    body = (f"CelebA, 150 probes drawn with seed {SEED} (the `anonymity` section reports seed 0), default model and "
            "bundled gallery; the independent judge is the `anonymity` section's. 'Large skin gap': the share of "
            "swapped faces whose donor's skin lightness (median LAB L, 0-255) differs from theirs by more than 50, "
            "where the classic swap's colour transfer leaves eyes and brows grey (see the README's demo notes).\n\n"
            + "\n".join(rows) + "\n\n"
            "Explored on the same draw before settling on these defaults:\n\n" + EXPLORED)
    write_fragment("anonymity_tuning", "Anonymizer settings on a tuning draw (issue 5)", body)


if __name__ == "__main__":
    main()
