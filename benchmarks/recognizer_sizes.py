"""Same-person thresholds of the consulted recognizers for small faces, calibrated on CelebA pairs shrunk to size.

Why: a threshold calibrated on CelebA photos (faces of about 60-200 px) does not hold for a face of 20 px. Shrunk
that far, every face looks alike to a network: different people's scores rise, so the FAR-1% threshold of full-size
faces refuses nearly every swap of a small face, and the anonymizer blurs it although no recognizer could tell the
swap from another person at that size. Here the photos of ``benchmarks/recognizers.py`` (the evaluation's probes
left out) are shrunk so that each face is S px (the shorter box side, as ``Face.size``), for several S; every
different-identity pair at one S gives that size's threshold at FAR 1% and 0.1%, and the same-identity pairs its
true accept rate. The thresholds are written to ``src/perface/models/recognizers.json`` (key ``by_size``); the
anonymizer's check uses, for a face of size s, the threshold of the smallest calibrated S >= s, never below the
full-size one (:meth:`perface.face.recognizers.Recognizer.threshold_for`). About 3 minutes on 2 cores.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import shared_data, today, write_fragment  # noqa: E402
from recognizers import OUT, calibrate, pair_scores, photos  # noqa: E402

from perface.evaluation.anonymity import _read_with_face  # noqa: E402
from perface.face import recognizers as R  # noqa: E402
from perface.face.detect import REFERENCE_DETECT, Face  # noqa: E402

SIZES = (16, 20, 24, 32, 40, 48, 64)
NAMES = ("mobilefacenet", "mobileface", "faceres", "dlib")  # the consulted networks, and the judge for reference


def shrink(image: np.ndarray, face: Face, size: float) -> tuple[np.ndarray, Face]:
    """The photo scaled so that the face is ``size`` px (area interpolation), and the face scaled with it."""
    f = size / face.size
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    return small, replace(face, box=tuple(float(v) * f for v in face.box), landmarks=face.landmarks * f,
                          landmarks68=None)


def main() -> None:
    root = shared_data() / "celeba"
    faces, ids = [], []
    for image, ident in tqdm(photos(root), desc="detect"):
        got = _read_with_face(root / "images" / image, REFERENCE_DETECT)
        if got is not None:
            faces.append(got)
            ids.append(ident)
    ids_a = np.asarray(ids)
    sizes_full = np.array([f.size for _, f in faces])
    print(f"{len(faces)} photos; face size median {np.median(sizes_full):.0f} px "
          f"(5th-95th percentile {np.percentile(sizes_full, 5):.0f}-{np.percentile(sizes_full, 95):.0f})")
    results: dict[str, dict[int, dict]] = {n: {} for n in NAMES}
    t0 = time.perf_counter()
    for s in SIZES:
        shrunk = [shrink(im, f, s) for im, f in faces]
        for name in NAMES:
            rec = R.get_recognizer(name)
            feats = np.concatenate([rec.embed(im, [f]) for im, f in tqdm(shrunk, desc=f"{name} at {s} px",
                                                                           leave=False)])
            results[name][s] = calibrate(*pair_scores(rec, feats, ids_a))
            print(s, name, results[name][s]["thresholds"], results[name][s]["tar"], flush=True)
    print(f"{time.perf_counter() - t0:.0f} s")

    data = json.loads(OUT.read_text())
    data["by_size"] = {
        "pairs": f"the same CelebA pairs, each photo shrunk so that its face is S px (shorter box side, area "
                 f"interpolation); benchmarks/recognizer_sizes.py, {today()}",
        "sizes": list(SIZES),
        "recognizers": {n: {k: [results[n][s]["thresholds"][k] for s in SIZES] for k in ("far_1e-2", "far_1e-3")}
                        for n in NAMES},
    }
    OUT.write_text(json.dumps(data, indent=2) + "\n")

    full = {n: R.get_recognizer(n).calibration for n in NAMES}
    lines = ["| recognizer | " + " | ".join(f"{s} px" for s in SIZES) + " | full size (shipped) |",
             "|---|" + "---|" * (len(SIZES) + 1)]
    for name in NAMES:
        cells = [f"{results[name][s]['thresholds']['far_1e-2']:.3f} ({results[name][s]['tar']['far_1e-2']:.2f}, "
                 f"AUC {results[name][s]['auc']:.2f})" for s in SIZES]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {full[name].thresholds['far_1e-2']:.3f} "
                     f"(AUC {full[name].auc:.2f}) |")
    body = (f"{len(faces)} CelebA photos (the calibration photos of the section above; face size median "
            f"{np.median(sizes_full):.0f} px), each shrunk so that its face is S px; threshold at FAR 1% over every "
            "different-identity pair at that size (in brackets the true accept rate there, and the ROC AUC). "
            "`python benchmarks/recognizer_sizes.py` writes them to `src/perface/models/recognizers.json` "
            "(`by_size`). The anonymizer checks a face of size s at the threshold of the smallest S >= s, never "
            "below the full-size one; faces larger than the largest S use the full-size threshold.\n\n"
            + "\n".join(lines))
    write_fragment("recognizer_sizes", "Recognizers: thresholds for small faces (issue 17)", body)


if __name__ == "__main__":
    main()
