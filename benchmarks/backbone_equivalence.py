"""Numerical equivalence of PerFace's PyTorch dlib ResNet with dlib's own ``compute_face_descriptor``.

Faces: CelebA photos in ../shared/data/celeba/images, detected with dlib's HOG detector (1 upsample,
largest face), 5-point landmarks, ``dlib.get_face_chip(size=150, padding=0.25)``. Both models get the same
chips. Prints a markdown table and writes it to docs/benchmarks/backbones.md.

    python benchmarks/backbone_equivalence.py [--n 500] [--images ../shared/data/celeba/images]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from backbone_common import ROOT, load_average, machine_info, write_section


def collect_chips(image_dir: Path, n: int) -> tuple[np.ndarray, int]:
    """First ``n`` faces (largest per image, sorted file order) as 150 px chips; also images scanned."""
    import dlib
    import face_recognition_models as frm
    from PIL import Image

    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    chips, scanned = [], 0
    for f in sorted(image_dir.glob("*.jpg")):
        scanned += 1
        img = np.asarray(Image.open(f).convert("RGB"))
        dets = det(img, 1)
        if len(dets) == 0:
            continue
        face = max(dets, key=lambda r: r.area())
        chips.append(dlib.get_face_chip(img, sp(img, face), size=150, padding=0.25))
        if len(chips) == n:
            break
    return np.stack(chips), scanned


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="number of faces")
    ap.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "data" / "celeba" / "images")
    args = ap.parse_args()

    import dlib
    import torch

    from perface.backbones import embed_chips, load_backbone
    from perface.backbones.dlib_dat import default_dat_path

    t0 = time.perf_counter()
    chips, scanned = collect_chips(args.images, args.n)
    t_det = time.perf_counter() - t0
    fr = dlib.face_recognition_model_v1(str(default_dat_path()))
    t0 = time.perf_counter()
    ref = np.array([np.asarray(v) for v in fr.compute_face_descriptor(list(chips))])
    t_dlib = time.perf_counter() - t0
    model = load_backbone("dlib-resnet")
    t0 = time.perf_counter()
    got = embed_chips(model, chips, batch_size=64).astype(np.float64)
    t_torch = time.perf_counter() - t0

    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    diff = np.abs(got - ref)
    d_ref = np.linalg.norm(ref[:, None] - ref[None], axis=-1)
    d_got = np.linalg.norm(got[:, None] - got[None], axis=-1)
    agree = f"{((d_ref < 0.6) == (d_got < 0.6)).mean():.4%} of pairs"
    header = ("| faces | cosine min | cosine mean | max (1 - cosine) | max abs diff | mean abs diff "
              "| same match at distance 0.6 |")
    row = (f"| {len(chips)} | {cos.min():.8f} | {cos.mean():.8f} | {(1 - cos).max():.1e} | {diff.max():.2e} "
           f"| {diff.mean():.2e} | {agree} |")

    md = f"""### dlib ResNet port: equivalence with dlib (`benchmarks/backbone_equivalence.py`)

{machine_info()}; dlib {dlib.__version__}, torch threads {torch.get_num_threads()}.
{len(chips)} CelebA faces (first {scanned} images of `shared/data/celeba/images`, HOG detector, 5-point
landmarks, `get_face_chip` 150 px, padding 0.25); dlib `compute_face_descriptor` vs `perface.backbones`
`embed_chips` (batch 64, fp32, CPU) on the same chips.

{header}
|---:|---:|---:|---:|---:|---:|---:|
{row}

Descriptor norms (dlib, not L2-normalised): mean {np.linalg.norm(ref, axis=1).mean():.3f}. Time on the
shared machine (other jobs running, 1-min load average {load_average()} at the end): detection+alignment
{t_det:.1f} s, dlib descriptors {t_dlib:.1f} s, torch {t_torch:.1f} s.
"""
    print(md)
    print("written to", write_section("backbone_equivalence", md))


if __name__ == "__main__":
    main()
