"""Where does the LBPH recognizer still find the identity after a swap? Rank-1 re-ID by grid region.

Same probes, gallery and anonymizer defaults as `perface evaluate-anonymization` (CelebA, 150 probes, seed 0),
but the chi-square nearest neighbour is computed on a subset of LBPH's 8 x 8 grid cells of the ArcFace
112 px crop: the centre 4 x 4 (eyes, nose, mouth), the inner 6 x 6, and the outer ring of 28 cells
(jaw outline, ears, hairline, background). Writes the `lbph_regions` section of docs/benchmarks.md.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

from perface.anonymize.anonymizer import AnonymizeConfig, Anonymizer
from perface.anonymize.select import SelectConfig
from perface.anonymize.swap import ClassicSwapper, forehead_points
from perface.evaluation.anonymity import (
    _best_face,
    face_features,
    readable_faces,
)
from perface.face.align import arcface_crop
from perface.face.landmarks import predict_landmarks68
from perface.face.lbph import chi_square_nearest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _common
from _common import celeba_reid_setup, write_fragment  # noqa: E402


def main() -> None:
    warnings.filterwarnings("ignore")
    root, probes, det, (gid, _, gl) = celeba_reid_setup()
    anonymizer = Anonymizer(AnonymizeConfig(method="swap", select=SelectConfig(seed=0)))
    truth, before, after, swapped, top_y = [], [], [], [], []
    for ident, _, image, face in readable_faces(root, probes, det):
        out, records = anonymizer.anonymize_array(image)
        rec = min(records, key=lambda r: np.abs(np.array(r.box) - np.array(face.box)).sum())
        truth.append(ident)
        before.append(face_features(image, face).lbph)
        after.append(face_features(out, _best_face(out, face, det) or face).lbph)
        swapped.append(rec.method == "swap")
        # where the swapped region's top edge (the default forehead points) falls in the 112 px crop
        lm68 = predict_landmarks68(image, face.box)
        pts = forehead_points(lm68, ClassicSwapper().forehead)
        mat = arcface_crop(image, face).matrix
        top_y.append(float((pts @ mat[:, :2].T + mat[:, 2])[:, 1].min()))
    t, b, a, s = np.array(truth), np.stack(before), np.stack(after), np.array(swapped)
    cells = np.arange(64).reshape(8, 8)
    regions = {"all 64 cells": cells.ravel(), "inner 6 x 6": cells[1:7, 1:7].ravel(),
               "centre 4 x 4": cells[2:6, 2:6].ravel(),
               "outer ring (28 cells)": np.setdiff1d(cells.ravel(), cells[1:7, 1:7].ravel()),
               "top two rows (forehead, hairline)": cells[:2].ravel(),
               "all but the top two rows": cells[2:].ravel()}

    def pick(x: np.ndarray, cs: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), 64, -1)[:, cs].reshape(len(x), -1)

    rows, centre = [], 0.0
    for name, cs in regions.items():
        r_b = np.mean(gid[chi_square_nearest(pick(b, cs), pick(gl, cs))] == t)
        hit = gid[chi_square_nearest(pick(a, cs), pick(gl, cs))] == t
        rows.append(f"| {name} | {r_b:.3f} | {hit.mean():.3f} | {hit[s].mean():.3f} |")
        centre = float(hit.mean()) if name.startswith("centre") else centre
    body = (f"{len(t)} CelebA probes anonymized with the defaults; {int(s.sum())} of them "
            f"swapped, the rest blurred (fail closed). Re-ID gallery: {len(gid)} other photos. "
            "Rank-1 LBPH re-identification using only some of the 8 x 8 grid cells of the aligned 112 px crop:\n\n"
            "| LBPH cells used | originals | anonymized | anonymized, swapped faces only |\n|---|---|---|---|\n"
            + "\n".join(rows)
            + f"\n\nThe swapped face itself (centre cells) re-identifies only {centre:.1%} (chance: 1 in {len(t)}); "
            "what LBPH still matches lies in the outer ring (jaw outline, ears, hairline, background), "
            "which a face swap leaves in place. Most of it is in the top two rows of cells (the upper 28 px of the "
            "crop: upper forehead, hairline, fringe): the swapped region's top edge (the default `--forehead 0.4`) "
            f"lies at y = {np.median(top_y):.0f} px of 112 in the median probe: what is above it stays the "
            "person's own.")
    write_fragment("lbph_regions", "Anonymization: where LBPH still re-identifies (issue 5)", body)


if __name__ == "__main__":
    main()
