"""Where the never-consulted judge (FaceRes) still finds the person after a swap, and swap variants screened.

Issue 17, item 3, on the *tuning* draw of CelebA probes (seed 1; never the reported seed-0 draw).

``study``: anonymize each probe with the defaults, then blur (Gaussian, sigma 15% of the face size) one region in
*both* the original and the output and score the pair again with every network recognizer: a region whose removal
lowers the pair's score is where the output still carries the person. Regions: the swapped region (convex hull of
the 68 landmarks and the forehead points), the ring around it (up to 30% of the face size past it: jaw outline,
ears, hairline) and the rest of the photo (hair, neck, background; FaceRes's crop is the box plus 10%).

``screen NAME...``: anonymize the probes with each variant (a few AnonymizeConfig / ClassicSwapper settings) and
report, per recognizer, the share of outputs it still verifies as the original person at FAR 1%, with the face
still detected, gender kept by the independent judge, and faces blurred instead. Rank-1 re-ID needs the 3,000-photo
gallery and is left to ``benchmarks/anonymity.py``. Results go to runs/faceres_residue_*.json; ``report`` writes the
``anonymity_residue`` section of docs/benchmarks.md from every saved result.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from perface.evaluation.anonymity import _best_face, _read_with_face, fit_gender_judge, split_probes
from perface.evaluation.protocols import write_json
from perface.face.detect import DetectConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _common
from _common import REPO, shared_data, write_fragment  # noqa: E402

SEED = 1
NETS = ("dlib", "mobilefacenet", "faceres", "mobileface")
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {  # name: (AnonymizeConfig, ClassicSwapper options)
    "defaults (main)": ({}, {}),
    "+ MobileFace consulted": ({"recognizers": ("mobilefacenet", "mobileface")}, {}),
    "outline 1.0": ({}, {"outline": 1.0}),
    "outline 1.0 + shape transfer 1.0": ({}, {"outline": 1.0, "shape_transfer": 1.0}),
    "check at EER": ({"recognizer_check_at": "eer"}, {}),
    "compare 3 swaps": ({"compare_swaps": 3}, {}),
    "compare 8 swaps": ({"compare_swaps": 8}, {}),
    "forehead 0.8": ({}, {"forehead": 0.8}),
    "outline + shape 1.0 + compare 8": ({"compare_swaps": 8}, {"outline": 1.0, "shape_transfer": 1.0}),
    "outline + shape 1.0 + MobileFace": ({"recognizers": ("mobilefacenet", "mobileface")},
                                         {"outline": 1.0, "shape_transfer": 1.0}),
    "membrane 0.5": ({}, {"membrane": 0.5}),
    "membrane 0": ({}, {"membrane": 0.0}),
    "outline + shape 1.0 + membrane 0.5": ({}, {"outline": 1.0, "shape_transfer": 1.0, "membrane": 0.5}),
    "outline + shape 1.0 + membrane 0": ({}, {"outline": 1.0, "shape_transfer": 1.0, "membrane": 0.0}),
    "outline + shape 1.0 + membrane 0 + compare 8": ({"compare_swaps": 8},
                                                     {"outline": 1.0, "shape_transfer": 1.0, "membrane": 0.0}),
    "outline + shape 1.0 + membrane 0.5 + compare 8": ({"compare_swaps": 8},
                                                       {"outline": 1.0, "shape_transfer": 1.0, "membrane": 0.5}),
    "all: outline + shape 1.0 + MobileFace + compare 8 + check at EER":
        ({"recognizers": ("mobilefacenet", "mobileface"), "compare_swaps": 8, "recognizer_check_at": "eer"},
         {"outline": 1.0, "shape_transfer": 1.0}),
    "feather blend (no Poisson membrane of the target's shading)": ({}, {"blend": "feather"}),
    "no colour transfer (the donor's own tone)": ({}, {"color_match": False}),
}


def _judge():
    """The independent gender judge (linear probe on dlib embeddings of UTKFace adults), cached in runs/."""
    from perface.evaluation.anonymity import GenderJudge

    p = REPO / "runs" / "gender_judge_w.npy"
    if p.exists():
        j = GenderJudge.__new__(GenderJudge)
        j.w = np.load(p)
        return j
    j = fit_gender_judge(shared_data() / "utkface" / "images", progress=False)
    p.parent.mkdir(exist_ok=True)
    np.save(p, j.w)
    return j


def _probes(n: int) -> list[tuple[str, np.ndarray, Any]]:
    root = shared_data() / "celeba"
    rows, _ = split_probes(root, n, SEED)
    out = []
    for ident, im in rows:
        found = _read_with_face(root / "images" / im, DetectConfig())
        if found is not None:
            out.append((ident, *found))
    return out


def _scores(a: list[tuple[np.ndarray, Any]], b: list[tuple[np.ndarray, Any]]) -> dict[str, np.ndarray]:
    """Each recognizer's pair score of a[i] and b[i]."""
    from perface.face.recognizers import get_recognizer

    out = {}
    for n in NETS:
        r = get_recognizer(n)
        out[n] = r.score(r.embed_crops([r.crop(im, f) for im, f in a]), r.embed_crops([r.crop(im, f) for im, f in b]))
    return out


def study(n: int) -> None:
    from perface.anonymize.anonymizer import Anonymizer
    from perface.anonymize.swap import _extended, _face_size, _hull
    from perface.face.landmarks import predict_landmarks68

    anon = Anonymizer()
    regions = ("swapped region", "ring around it", "rest of the photo")
    keys = ("none", *regions, *(f"{r}, output only" for r in regions))
    pairs: dict[str, tuple[list, list]] = {k: ([], []) for k in keys}
    t0 = time.perf_counter()
    for _, image, face in _probes(n):
        out, recs = anon.anonymize_array(image)
        if not recs or recs[0].method != "swap":
            continue
        lm = predict_landmarks68(image, face.box)
        size = _face_size(lm)
        hull = np.zeros(image.shape[:2], np.uint8)
        cv2.fillConvexPoly(hull, _hull(_extended(lm, anon.swapper.forehead)), 1)
        k = int(0.6 * size) | 1
        ring = cv2.dilate(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) - hull
        rest = 1 - hull - ring
        sigma = 0.15 * size
        for name, m in (("none", None), *zip(regions, (hull, ring, rest), strict=True)):
            pa, pb = pairs[name]
            if m is None:
                pa.append((image, face))
                pb.append((out, face))
                continue
            sel = m.astype(bool)[..., None]
            blurred = np.where(sel, cv2.GaussianBlur(out, (0, 0), sigma), out)
            pa.append((np.where(sel, cv2.GaussianBlur(image, (0, 0), sigma), image), face))
            pb.append((blurred, face))
            pairs[f"{name}, output only"][0].append((image, face))
            pairs[f"{name}, output only"][1].append((blurred, face))
    rows = {k: {n: float(np.mean(v)) for n, v in _scores(*pairs[k]).items()} for k in pairs}
    from perface.face.recognizers import get_recognizer

    write_json(REPO / "runs" / "faceres_residue_study.json",
               {"probes": len(pairs["none"][0]), "seconds": time.perf_counter() - t0, "mean_score": rows,
                "far_1e-2": {n: get_recognizer(n).threshold("far_1e-2") for n in NETS}})


def screen(names: list[str], n: int) -> None:
    from perface.anonymize.anonymizer import AnonymizeConfig, Anonymizer
    from perface.anonymize.select import SelectConfig
    from perface.face.recognizers import get_recognizer

    judge = _judge()
    probes = _probes(n)
    dlib = get_recognizer("dlib")
    before_male = judge.is_male(np.concatenate([dlib.embed(im, [f]) for _, im, f in probes]))
    for name in names:
        opts, sw = VARIANTS[name]
        cfg = AnonymizeConfig(select=SelectConfig(seed=SEED), swapper_options=sw, **opts)
        anon = Anonymizer(cfg)
        t0 = time.perf_counter()
        outs, blurred, detected, untouched = [], 0, [], 0
        for _, image, face in probes:
            out, recs = anon.anonymize_array(image)
            recs = [r for r in recs if r.kind == "face"]
            blurred += sum(r.method != "swap" for r in recs)
            untouched += sum(r.left_unanonymized for r in recs)
            after = _best_face(out, face, DetectConfig())
            detected.append(after is not None)
            outs.append((out, after or face))
        secs = time.perf_counter() - t0
        scores = _scores([(im, f) for _, im, f in probes], outs)
        male_after = judge.is_male(np.concatenate([dlib.embed(im, [f]) for im, f in outs]))
        res = {"probes": len(probes), "seconds": secs, "faces_blurred": blurred, "left_unanonymized": untouched,
               "detected": float(np.mean(detected)), "gender_kept_judge": float(np.mean(before_male == male_after)),
               "verified_far_1e-2": {k: float(np.mean(v >= get_recognizer(k).threshold("far_1e-2")))
                                     for k, v in scores.items()},
               "mean_score": {k: float(np.mean(v)) for k, v in scores.items()},
               "anonymize_options": {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()},
               "swapper_options": sw}
        print(name, json.dumps(res), flush=True)
        slug = "".join(c if c.isalnum() else "_" for c in name)
        write_json(REPO / "runs" / f"faceres_residue_screen_{slug}.json", {"name": name, **res})


def speed(names: list[str], n: int, rounds: int = 2) -> None:
    """Paired timing: each probe anonymized by every named variant in turn, rounds alternating; images/s."""
    from perface.anonymize.anonymizer import AnonymizeConfig, Anonymizer
    from perface.anonymize.select import SelectConfig

    probes = _probes(n)
    anons = {k: Anonymizer(AnonymizeConfig(select=SelectConfig(seed=SEED), swapper_options=VARIANTS[k][1],
                                           **VARIANTS[k][0])) for k in names}
    for an in anons.values():  # warm up: models loaded, donor caches filled once
        an.anonymize_array(probes[0][1])
    spent = dict.fromkeys(names, 0.0)
    for r in range(rounds):
        for _, image, _ in probes:
            for k in names if r % 2 == 0 else names[::-1]:
                t0 = time.perf_counter()
                anons[k].anonymize_array(image)
                spent[k] += time.perf_counter() - t0
    res = {k: rounds * len(probes) / v for k, v in spent.items()}
    print("images/s", res, flush=True)
    write_json(REPO / "runs" / "faceres_residue_speed.json", {"probes": len(probes), "rounds": rounds,
                                                             "images_per_s": res})


def report() -> None:
    parts = []
    p = REPO / "runs" / "faceres_residue_study.json"
    if p.exists():
        d = json.loads(p.read_text())
        lines = ["| region blurred (in both photos unless said) | " + " | ".join(NETS) + " |",
                 "|---|" + "---|" * len(NETS)]
        lines.append("| FAR 1% threshold | " + " | ".join(f"{d['far_1e-2'][n]:.3f}" for n in NETS) + " |")
        for k, row in d["mean_score"].items():
            lines.append(f"| {k} | " + " | ".join(f"{row[n]:.3f}" for n in NETS) + " |")
        parts.append(f"**Where the output still carries the person** ({d['probes']} swapped faces of the seed-1 "
                     "draw, defaults; mean pair score original vs output; a region whose blurring lowers it "
                     "carried identity):\n\n" + "\n".join(lines) + "\n\n" + FINDINGS)
    rows = [json.loads(q.read_text()) for q in sorted((REPO / "runs").glob("faceres_residue_screen_*.json"))]
    if rows:
        rows.sort(key=lambda r: list(VARIANTS).index(r["name"]) if r["name"] in VARIANTS else 99)
        lines = ["| variant | probes | " + " | ".join(f"verified FAR 1%, {n}" for n in NETS)
                 + " | face detected | gender kept (judge) | blurred instead | s per probe |",
                 "|---|---|" + "---|" * (len(NETS) + 4)]
        for r in rows:
            v = r["verified_far_1e-2"]
            lines.append(f"| {r['name']} | {r['probes']} | " + " | ".join(f"{v[n]:.1%}" for n in NETS)
                         + f" | {r['detected']:.1%} | {r['gender_kept_judge']:.1%} | {r['faces_blurred']} | "
                         f"{r['seconds'] / r['probes']:.1f} |")
        parts.append("**Variants screened** (same draw; other jobs were sharing the 2 cores, so seconds are rough):"
                     "\n\n" + "\n".join(lines) + "\n\n" + SCREEN_NOTES)
    p = REPO / "runs" / "faceres_residue_speed.json"
    if p.exists():
        d = json.loads(p.read_text())
        ips = d["images_per_s"]
        base = ips.get("defaults (main)")
        cells = ", ".join(f"{k}: {v:.2f} images/s" + (f" ({v / base:.2f}x)" if base else "") for k, v in ips.items())
        parts.append(f"**Throughput**, paired (each of {d['probes']} probe photos anonymized by every variant in "
                     f"turn, {d['rounds']} rounds in alternating order, in one process; other jobs shared the 2 "
                     f"cores): {cells}.")
    write_fragment("anonymity_residue", "Where FaceRes still re-identifies, and swap variants (issue 17, tuning "
                   "draw)", __doc__.split("\n\n", 1)[1] + "\n\n" + "\n\n".join(parts))


FINDINGS = ""
SCREEN_NOTES = ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("study", "screen", "speed", "report"))
    ap.add_argument("variants", nargs="*")
    ap.add_argument("-n", type=int, default=50)
    args = ap.parse_args()
    if args.what == "study":
        study(args.n)
    elif args.what == "screen":
        screen(args.variants or list(VARIANTS), args.n)
    elif args.what == "speed":
        speed(args.variants, args.n)
    report()


if __name__ == "__main__":
    main()
