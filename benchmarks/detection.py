"""Detector recall and extra detections on ../shared/data/celeba (one labelled face per photo).

CelebA gives no boxes here, so recall is the share of photos with at least one face found, and
detections beyond one per photo are counted as "extra" (an upper bound on false positives: other
people appear in the wild). False positives proper are counted on face-free scikit-image pictures.
"""

from __future__ import annotations

import argparse
import csv
import time

import numpy as np
from _common import shared_data, write_fragment

from perface.face.detect import detect
from perface.face.io import read_image


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=1000)
    args = ap.parse_args()
    root = shared_data() / "celeba"
    rows = list(csv.DictReader((root / "labels.csv").read_text().splitlines()))
    rng = np.random.default_rng(0)
    rows = [rows[i] for i in sorted(rng.choice(len(rows), min(args.limit, len(rows)), replace=False))]
    images = [read_image(root / "images" / r["image"]) for r in rows]
    from skimage import data as skd

    negatives = []
    for name in ("coffee", "chelsea", "rocket", "coins", "hubble_deep_field", "immunohistochemistry", "logo",
                 "page", "text", "brick", "grass", "gravel", "retina", "camera", "moon", "horse", "clock"):
        try:
            negatives.append(np.asarray(getattr(skd, name)()))
        except Exception:  # noqa: BLE001 - some pictures need a download; skip those
            continue
    negatives = [n if n.ndim == 3 else np.stack([n] * 3, -1) for n in negatives]
    negatives = [(n[..., :3] if n.dtype == np.uint8 else (n[..., :3] * 255)).astype(np.uint8) for n in negatives]
    out = []
    for backend in ("centerface", "hog"):
        t = time.perf_counter()
        dets = [detect(im, backend=backend) for im in images]
        ms = (time.perf_counter() - t) / len(images) * 1000
        found = np.mean([len(d) > 0 for d in dets])
        multi = np.mean([max(0, len(d) - 1) for d in dets])
        neg = sum(len(detect(n, backend=backend)) for n in negatives)
        out.append((backend, found, multi, neg, ms))
    body = [f"{len(images)} random CelebA photos (longer side 256 px), {len(negatives)} face-free scikit-image "
            "pictures.", "",
            "| backend | recall (photos with a face found) | extra detections / photo | false positives "
            "on face-free images | ms / photo |", "|---|---|---|---|---|"]
    for b, f, m, n, ms in out:
        body.append(f"| {b} | {f:.3f} | {m:.3f} | {n} / {len(negatives)} images | {ms:.1f} |")
    body.append("")
    body.append("Extra detections are mostly other people in the photo (CelebA photos are in the wild), so they "
                "bound false positives from above. The default detector is the one with the higher recall.")
    write_fragment("detection", "Face detection (issue 2)", "\n".join(body))


if __name__ == "__main__":
    main()
