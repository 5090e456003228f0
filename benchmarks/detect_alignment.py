"""Does the recall work change alignment on ordinary photos? CelebA-pair AUC of dlib and MobileFaceNet with the
detector before it (one 640 px pass, as ``DetectConfig(tiles=False, rotations=(0,), recheck_threshold=None)``
runs it) and with the default detector, on the photos and protocol of benchmarks/recognizers.py (the largest face
of each photo, every same / different identity pair), plus how many photos get a different face.

Also the default on the float graph everywhere (``precision="fp32"``) and without the small-scene turned copies
(``small_rotation_scale=None``, the default before 2026-12-04). Writes docs/benchmarks/detect_alignment.md.
About 5 minutes on 2 cores; nothing cached.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from _common import shared_data, write_fragment
from recognizers import calibrate, pair_scores, photos

from perface.evaluation.anonymity import _iou
from perface.face import recognizers as R
from perface.face.detect import DetectConfig, detect
from perface.face.io import read_image

FP32 = "default with the float graph (`precision=\"fp32\"`)"
DETECTORS = {"before (plain pass only)": DetectConfig(tiles=False, rotations=(0,), recheck_threshold=None,
                                                   precision="fp32"),
             "default": DetectConfig(),
             FP32: DetectConfig(precision="fp32"),
             "default without the small-scene turned copies": DetectConfig(small_rotation_scale=None)}


def _differ(a, b) -> bool:
    return (a is None) != (b is None) or (a is not None and (a[1].box != b[1].box or a[1].rotation != b[1].rotation
                                                             or not np.array_equal(a[1].landmarks, b[1].landmarks)))


def main() -> None:
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    root = shared_data() / "celeba"
    rows = photos(root)
    chosen: dict[str, list] = {k: [] for k in DETECTORS}
    n_diff = n_extra = n_small = n_prec = 0
    for image, ident in rows:
        img = read_image(root / "images" / image)
        found = {k: detect(img, c) for k, c in DETECTORS.items()}
        for k, faces in found.items():
            chosen[k].append((img, max(faces, key=lambda f: f.width * f.height), ident) if faces else None)
        a, b, p, c = (chosen[k][-1] for k in DETECTORS)
        n_extra += len(found[FP32]) > len(found["before (plain pass only)"])
        n_diff += _differ(a, p)  # the same graph: what the extra views change
        n_small += _differ(b, c)
        n_prec += _differ(b, p) and (b is None or p is None or _iou(b[1].box, p[1].box) < 0.5)
    lines = ["| detector | photos with a face | dlib AUC | MobileFaceNet AUC |", "|---|---|---|---|"]
    for k, got in chosen.items():
        got = [g for g in got if g is not None]
        ids = np.asarray([g[2] for g in got])
        aucs = []
        for name in ("dlib", "mobilefacenet"):
            rec = R.get_recognizer(name)
            feats = np.concatenate([rec.embed_crops([rec.crop(i, f) for i, f, _ in got[s:s + 32]])
                                    for s in range(0, len(got), 32)])
            aucs.append(calibrate(*pair_scores(rec, feats, ids))["auc"])
        lines.append(f"| {k} | {len(got)} | {aucs[0]:.4f} | {aucs[1]:.4f} |")
    body = f"""{len(rows)} CelebA photos (benchmarks/recognizers.py's list); the largest face of each, as that benchmark
takes it. {time.perf_counter() - t0:.0f} s.

{chr(10).join(lines)}

Photos whose chosen face differs (box, rotation or landmarks) between the plain pass and the default, both with
the float graph: {n_diff}; photos where that default finds more faces than the plain pass: {n_extra}; photos
whose chosen face differs between the default and the default without the full-resolution turned copies of
scenes with small faces (`small_rotation_scale=None`, the default before 2026-12-04): {n_small}; photos whose
chosen face is another face (box IoU < 0.5, or none) with the float graph everywhere than with the default's
8-bit upright passes (since 2026-12-04; boxes and landmarks of the same face move a little between the two): {n_prec}.
Every face the plain pass finds keeps its box and landmarks exactly
(tests/face/test_detect.py checks it on the test photos); the differences are faces the extra views add (turned
faces, and now and then a torso taken for a turned face) when larger than the person's face, and plain-pass faces
turned by the re-check."""
    write_fragment("detect_alignment", "Detector and alignment: recognizer AUC with the recall work", body)


if __name__ == "__main__":
    main()
