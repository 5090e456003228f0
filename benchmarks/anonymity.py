"""Anonymity of `perface anonymize` on ../shared/data/celeba: re-ID, detection, attribute agreement.

Runs `perface evaluate-anonymization` (150 probes, seed 0) for the variants named on the command line
(default: all), keeps each result in runs/anonymity_<variant>.json, and writes the `anonymity` section of
docs/benchmarks.md from every result present.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _common import KEPT, REPO, shared_data, write_fragment

from perface.anonymize.anonymizer import default_gallery_path
from perface.anonymize.gallery import Gallery
from perface.evaluation.anonymity import AnonymityResult, evaluate_anonymization, fit_gender_judge
from perface.evaluation.protocols import write_json

VARIANTS = {  # name: (method, step-1 rule, ClassicSwapper options, AnonymizeConfig options)
    "swap": ("swap", "hybrid", {}, {}),  # the defaults (dlib + FaceRes + MobileFace consulted)
    "swap-dlib-only": ("swap", "hybrid", {}, {"recognizers": ()}),  # the identity check before the ensemble
    "swap-paper": ("swap", "metric", {}, {}),  # the paper's step 1 alone
    "swap-forehead": ("swap", "hybrid", {"forehead": 1.2}, {}),  # the option that also replaces the hairline
    # up to 3 safe swaps compared unless MobileFaceNet scores the first below 0.15 (the default settle rule)
    "swap-compare3": ("swap", "hybrid", {}, {"compare_swaps": 3}),
    # consulted networks checked at their threshold for the face's size (an option: see its title)
    "swap-size-thresholds": ("swap", "hybrid", {}, {"check_by_size": True}),
    # faces turned 45-60 degrees swapped and softened rather than blurred (an option)
    "swap-turned-soft": ("swap", "hybrid", {}, {"max_yaw_soft_deg": 60.0}),
    # the defaults 2026-12-05 15:10-18:40: a face every donor and softened swap was refused for blurred, not its
    # closest swap kept over the blurred region
    "swap-no-blur-around": ("swap", "hybrid", {}, {"blur_around": None}),
    # the defaults 2026-12-05 18:40-20:00: faces under 32 px that every donor failed for blurred
    "swap-no-sharp-around": ("swap", "hybrid", {}, {"blur_around_sharp": None}),
    # the defaults 2026-12-05 20:00-21:15: step 2 chose from every donor, gender-clear or not
    "swap-every-donor": ("swap", "hybrid", {}, {"donor_gender_sure": None}),
    # the defaults before 2026-12-05 15:10: faces turned past the yaw guard blurred, not swapped through the mesh
    "swap-turned-blur": ("swap", "hybrid", {}, {"turned_swap": None}),
    # the defaults before 2026-12-05 03:00: MobileFaceNet consulted, FaceRes the never-consulted judge
    "swap-judge-faceres": ("swap", "hybrid", {}, {"recognizers": ("mobilefacenet", "mobileface")}),
    # the face found again in the whole output rather than in a crop around it (an option)
    "swap-redetect-whole": ("swap", "hybrid", {}, {"redetect_whole": True}),
    "blur": ("blur", "hybrid", {}, {}),
}


_FLAGS = {"max_yaw_soft_deg": "max-yaw-soft"}  # config fields whose command-line option has another name
_LIBRARY_ONLY = {"redetect_whole", "blur_around_sharp"}  # AnonymizeConfig fields without a command-line option
_TITLE_NOTES = {  # what a variant's block title adds after its options: why it is not (or was) the default
    "swap-compare3": (
        ' (an option, not the default: one face fewer verified by FaceRes on this draw for 0.83x the images/s; '
        'see the section on why faces are still blurred)'),
    "swap-size-thresholds": (
        ' (an option, not the default: 4 more faces swapped rather than blurred, but FaceRes verifies 2 of them; '
        'see the section on softened swaps)'),
    "swap-turned-soft": (
        ' (an option, not the default: chosen against on the tuning draw, a face or two for a soft frontal face '
        'on a turned head; see the section on softened swaps)'),
    "swap-turned-blur": (
        ' (the defaults before 2026-12-05 15:10: faces turned past the yaw guard blurred rather than swapped '
        'through the 3-D face mesh)'),
    "swap-no-blur-around": (
        ' (the defaults 2026-12-05 15:10-18:40: a face that every donor and softened swap was refused for '
        'blurred, rather than its closest swap kept over the blurred face region)'),
    "swap-judge-faceres": (
        ' (the defaults before 2026-12-05 03:00: MobileFaceNet consulted, FaceRes the never-consulted judge; see '
        'the section on which network is the judge)'),
    "swap-every-donor": (
        " (the defaults 2026-12-05 20:00-21:15: step 2 chose from every donor, also those FaceRes's gender head "
        'reads as their gallery gender with less than 0.9 probability)'),
    "swap-no-sharp-around": (
        ' (the defaults 2026-12-05 18:40-20:00: faces under 32 px that every donor and softened swap was refused '
        'for blurred, not swapped sharp over the blurred region)'),
    "swap-redetect-whole": (
        ' (an option, not the default: the face found again in the whole output for the check, not in a crop '
        'around it; see the section on which network is the judge, round 26)'),
}
TUNING = ("Settings such as `max_yaw_deg` were chosen on another draw of probes (seed 1), never on this one: "
          "see the section on the tuning draw below.")


def _value(key: str, v: object) -> str:
    """An option's value as the CLI spells it."""
    if key == "turned_swap" and v is None:
        return "blur"
    if key == "blur_around" and v is None:
        return "-1"
    if key == "donor_gender_sure" and v is None:
        return "0"
    if isinstance(v, tuple):
        return ",".join(v) or "none"
    return v if isinstance(v, str) else f"{v:g}"


def _judge_note() -> str:
    """What the saved judge check says about the judge on synthetic faces ('' before the first run)."""
    p = REPO / "runs" / "anonymity_judge.json"
    if not p.exists():
        return ""
    d = json.loads(p.read_text())
    return (f"; on the {d['donors']} synthetic donors of the bundled gallery it agrees with their gallery gender "
            f"(raters' where clear, else the predictor's) in {d['agrees_with_donor_gender']:.1%}")


def _page_blocks() -> dict[str, str]:
    """The variant blocks of the section as it stands, by title without its run time: results are kept in runs/,
    which a fresh checkout lacks, so a variant without a result keeps the block the page already shows."""
    import re

    page = REPO / "docs" / "benchmarks" / "anonymity.md"
    text = page.read_text().split(KEPT)[0] if page.exists() else ""
    starts = [m.start() for m in re.finditer(r"^\*\*`--method ", text, re.M)]
    blocks = {}
    for i, s in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else text.find("\n\n" + TUNING[:40], s)
        block = text[s : end if end != -1 else None].strip()
        blocks[re.sub(r" \(run [^)]*\)$", "", block.splitlines()[0])] = block
    return blocks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--report-only", action="store_true", help="rewrite the section from the saved results")
    args = ap.parse_args()
    root = shared_data() / "celeba"
    judge = None if args.report_only else fit_gender_judge(shared_data() / "utkface" / "images", progress=False)
    if judge is not None:  # how far the judge itself can be trusted on synthetic (donor) faces
        gallery = Gallery.open(default_gallery_path(), readonly=True)
        donors = [gallery.get(i) for i in gallery.ids()]
        ident = np.stack([d.identity / np.linalg.norm(d.identity) for d in donors])
        agree = float(np.mean(judge.is_male(ident) == np.array([d.gender == "male" for d in donors])))
        write_json(REPO / "runs" / "anonymity_judge.json", {"donors": len(donors), "agrees_with_donor_gender": agree})
    for name in [] if args.report_only else args.variants:
        method, group_by, swapper_options, options = VARIANTS[name]
        res = evaluate_anonymization(root, n_probes=150, method=method, seed=0, progress=False, group_by=group_by,
                                     gender_judge=judge, swapper_options=swapper_options, anonymize_options=options)
        write_json(REPO / "runs" / f"anonymity_{name}.json", res.to_dict())
    parts = []
    earlier = _page_blocks()
    for name, (method, group_by, swapper_options, options) in VARIANTS.items():
        p = REPO / "runs" / f"anonymity_{name}.json"
        title = f"**`--method {method}`**" + (f", step 1 `--group-by {group_by}`" if method == "swap" else "")
        title += "".join(f", `--{k} {v}`" for k, v in swapper_options.items())
        title += "".join(f", `{k}={v!r}` (library option)" if k in _LIBRARY_ONLY else
                         f", `--{_FLAGS.get(k, k.replace('_', '-'))}`" if v is True else
                         f", `--{_FLAGS.get(k, k.replace('_', '-'))} {_value(k, v)}`"
                         for k, v in options.items())
        title += " (the defaults)" if name == "swap" else ""
        title += (" (an option, not the default: it paints skin over fringes and caps; see the tuning draw)"
                  if swapper_options else "")
        title += _TITLE_NOTES.get(name, "")
        if not p.exists():  # this checkout has no result for it: keep the block the page already has
            if title in earlier:
                parts.append(earlier[title])
            continue
        d = json.loads(p.read_text())
        d.pop("seconds")
        res = AnonymityResult(**d, seconds=json.loads(p.read_text())["seconds"])
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(p.stat().st_mtime))
        title += f" (run {when})"
        parts.append(title + "\n\n" + res.to_markdown())
    body = ("Targets (swap, issue 17): rank-1 re-ID <= 2% and still verified at FAR 1% <= 2% with every ArcFace- or "
            "VGGFace2-class recognizer, including **MobileFaceNet and FaceNet, which the anonymizer never consults** "
            "(the defaults consult dlib, FaceRes and MobileFace; FaceNet, trained on CASIA-WebFace, joined the "
            "evaluation on 2026-12-06, so blocks run before then have no row for it; until 2026-12-05 03:00 FaceRes "
            "was the judge and MobileFaceNet consulted, as in the blocks run before then); a face still detected "
            "in >= 98% of outputs; gender kept >= 97% by an independent judge; zero faces left unanonymized. "
            "(Issue 5's targets: re-ID <= 5%, detected >= 95%, gender kept >= 95%.)\n\n"
            "Read 'gender kept' with care: the anonymizer's attribute check (`keep_gender`, on by default) asks the "
            "same offline predictor that scores it here, so for swapped faces it measures how well that check "
            "works, not an independent judgement; the row 'independent judge' is one: a linear probe on dlib "
            "identity embeddings fitted on 1,500 UTKFace adults (other people), which the anonymizer never "
            "consults. Its agreement with CelebA's own gender labels shows how far to trust it" + _judge_note() + ". "
            "Faces that fall back to a blur are counted too; the predictor "
            "tends to read blurred men as women. Per-probe rows (method, donor, hits) go to runs/anonymity_*.json "
            "(not committed; rerun the script). "
            "LBPH's rank-1 hits churn with the donor draw: between two runs with different defaults, 12 probes "
            "became hits and 6 stopped being hits, so its rate moves by a few points from run to run. "
            "Each variant's title gives when it ran (results of the code of that time; the detector's "
            "small-scene turned copies date from 2026-12-04 18:40); runs before 18:00 that day shared the 2 cores "
            "with other jobs (load average 11-19), so their seconds are not a speed figure.\n\n"
            + "\n\n".join(parts) + "\n\n" + TUNING)
    write_fragment("anonymity", "Anonymization: re-identification by every recognizer, and utility, on CelebA "
                   "(issues 5 and 17)", body)


if __name__ == "__main__":
    main()
