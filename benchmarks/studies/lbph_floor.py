"""The lowest LBPH re-identification any face swap of this region can reach on CelebA (issue 5).

Every probe gets the *same* donor face (one per gender, by CelebA's `Male` label), swapped with the classic swapper
at the default forehead edge and at `--forehead 1.2`. The pasted face then carries nothing of the probe but the
probe's own landmark geometry, so whatever LBPH still re-identifies comes from what the swap leaves: hairline,
hair, ears, jaw outline, background. Same probes and re-ID gallery as `perface evaluate-anonymization` (seed 0).
Writes the `lbph_floor` section of docs/benchmarks.md.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from perface.anonymize.anonymizer import AnonymizeConfig, default_gallery_path
from perface.anonymize.gallery import Gallery
from perface.anonymize.swap import ClassicSwapper
from perface.evaluation.anonymity import (
    FaceFeatures,
    _best_face,
    _read_male_labels,
    face_features,
    rank1_hits,
    readable_faces,
)
from perface.face.landmarks import predict_landmarks68

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _common
from _common import celeba_reid_setup, write_fragment  # noqa: E402

FOREHEADS = (0.4, 1.2)


def fixed_donors(gallery: Gallery) -> dict[bool, tuple[str, np.ndarray, np.ndarray]]:
    """The first young donor of each gender in the bundled gallery: male flag -> (id, crop, landmarks)."""
    out = {}
    for male, gender in ((True, "male"), (False, "female")):
        d = next(gallery.donors(gender, "young"))
        out[male] = (d.id, d.crop_rgb(), d.landmarks)
    return out


def main() -> None:
    warnings.filterwarnings("ignore")
    root, probes, det, (gid, gdlib, glbph) = celeba_reid_setup()
    male_of = _read_male_labels(root)
    with Gallery.open(default_gallery_path(), readonly=True) as gallery:
        donors = fixed_donors(gallery)
    # the anonymizer's own swapper settings: its size floor is half the anonymizer's face-size floor
    floor = 0.5 * AnonymizeConfig().min_face_px
    swappers = {f: ClassicSwapper(forehead=f, min_face_px=floor) for f in FOREHEADS}
    refused: Counter[str] = Counter()
    truth: list[str] = []
    orig: list[FaceFeatures] = []
    after: dict[float, list[FaceFeatures]] = {f: [] for f in FOREHEADS}
    swapped: dict[float, list[bool]] = {f: [] for f in FOREHEADS}
    for ident, im, image, face in readable_faces(root, probes, det):
        truth.append(ident)
        orig.append(face_features(image, face))
        lm68 = predict_landmarks68(image, face.box)
        _, crop, dlm = donors[male_of.get(im, True)]
        for f, swapper in swappers.items():
            res = swapper.swap(image, lm68, crop, dlm)
            out = res.image
            after[f].append(face_features(out, _best_face(out, face, det) or face))
            swapped[f].append(res.ok)
            if not res.ok and f == FOREHEADS[0]:
                refused[res.reason] += 1

    def rates(feats: list[FaceFeatures], keep: list[bool] | None = None) -> str:
        """Rank-1 LBPH and dlib re-ID as two table cells, over the probes in ``keep`` (all by default)."""
        dlib_hit, lbph_hit = (np.array(h) for h in rank1_hits(feats, truth, gid, gdlib, glbph))
        m = np.ones(len(truth), bool) if keep is None else np.array(keep)
        return f"{lbph_hit[m].mean():.3f} | {dlib_hit[m].mean():.3f}"

    rows = [f"| originals | - | {rates(orig)} |"]
    for f in FOREHEADS:
        rows.append(f"| one fixed donor per gender, `--forehead {f}` | {sum(swapped[f])} of {len(truth)} | "
                    f"{rates(after[f], swapped[f])} |")
    ids = ", ".join(f"{'male' if m else 'female'} {donors[m][0]}" for m in (True, False))
    refusals = ", ".join(f"{n} for {r}" for r, n in refused.items()) or "none"
    body = (
        f"{len(truth)} CelebA probes (seed 0, as in the `anonymity` section), re-ID gallery of {len(gid)} other "
        f"photos. Every probe is swapped with the same donor face (bundled gallery: {ids}; by CelebA's gender "
        "label), so the pasted face carries nothing of the person except the geometry of their landmarks. Rates are "
        f"over the faces the swap accepted (refused: {refusals}).\n\n"
        "| faces | swapped | rank-1 re-ID, LBPH | rank-1 re-ID, dlib |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\nWhat LBPH re-identifies here comes from what a swap of this region leaves in the photo (hairline, "
        "hair, ears, jaw outline, background, lighting) and from the face's geometry. Another fixed donor would "
        "move it by a few points, but no choice of donor removes it: compare the rates with the donors the "
        "anonymizer picks, in the `anonymity` section."
    )
    write_fragment("lbph_floor", "Anonymization: the LBPH floor of a face swap (issue 5)", body)


if __name__ == "__main__":
    main()
