"""The lowest LBPH re-identification any face swap of this region can reach on CelebA (issue 5).

Every probe gets the *same* donor face (one per gender, by CelebA's `Male` label), swapped with the classic swapper
at the default forehead edge and at `--forehead 1.2`. The pasted face then carries nothing of the probe but the
probe's own landmark geometry, so whatever LBPH still re-identifies comes from what the swap leaves: hairline,
hair, ears, jaw outline, background. Same probes and re-ID gallery as `perface evaluate-anonymization` (seed 0).
Writes the `lbph_floor` section of docs/benchmarks.md.
"""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
from _common import celeba_reid_setup, write_fragment

from perface.anonymity import (
    _best_face,
    _read_male_labels,
    _read_with_face,
    chi_square_nearest,
    face_features,
)
from perface.anonymize import AnonymizeConfig, default_gallery_path
from perface.gallery import Gallery
from perface.landmarks import predict_landmarks68
from perface.swap import ClassicSwapper

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
    orig_lbph, orig_dlib = [], []
    after = {f: ([], [], []) for f in FOREHEADS}  # lbph, dlib, swapped ok
    for ident, im in probes:
        found = _read_with_face(root / "images" / im, det)
        if found is None:
            continue
        image, face = found
        truth.append(ident)
        feats = face_features(image, face)
        orig_lbph.append(feats.lbph)
        orig_dlib.append(feats.dlib)
        lm68 = predict_landmarks68(image, face.box)
        _, crop, dlm = donors[male_of.get(im, True)]
        for f, swapper in swappers.items():
            res = swapper.swap(image, lm68, crop, dlm)
            out = res.image
            ff = face_features(out, _best_face(out, face, det) or face)
            after[f][0].append(ff.lbph)
            after[f][1].append(ff.dlib)
            after[f][2].append(res.ok)
            if not res.ok and f == FOREHEADS[0]:
                refused[res.reason] += 1
    t = np.array(truth)

    def rank1_lbph(x: list[np.ndarray], mask: np.ndarray | None = None) -> float:
        hit = gid[chi_square_nearest(np.stack(x), glbph)] == t
        return float(hit[mask].mean() if mask is not None else hit.mean())

    def rank1_dlib(x: list[np.ndarray], mask: np.ndarray | None = None) -> float:
        hit = gid[np.argmax(np.stack(x) @ gdlib.T, axis=1)] == t
        return float(hit[mask].mean() if mask is not None else hit.mean())

    rows = [f"| originals | - | {rank1_lbph(orig_lbph):.3f} | {rank1_dlib(orig_dlib):.3f} |"]
    for f in FOREHEADS:
        ok = np.array(after[f][2])
        rows.append(f"| one fixed donor per gender, `--forehead {f}` | {int(ok.sum())} of {len(t)} | "
                    f"{rank1_lbph(after[f][0], ok):.3f} | {rank1_dlib(after[f][1], ok):.3f} |")
    ids = ", ".join(f"{'male' if m else 'female'} {donors[m][0]}" for m in (True, False))
    body = (
        f"{len(t)} CelebA probes (seed 0, as in the `anonymity` section), re-ID gallery of {len(gid)} other photos. "
        f"Every probe is swapped with the same donor face (bundled gallery: {ids}; by CelebA's gender label), so "
        "the pasted face carries nothing of the person except the geometry of their landmarks. Rates are over the "
        f"faces the swap accepted (refused: {', '.join(f'{n} for {r}' for r, n in refused.items()) or 'none'}).\n\n"
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
