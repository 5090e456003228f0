"""End-to-end face pipeline speed at 640 px: decode, detect, align, embed.

Images are CelebA photos upscaled to 640 px on the longer side and re-encoded as JPEG, so decoding
is part of the timing. Reports detection ms/image, embedding ms/face (both engines) and faces/s
end to end, sequential and with the overlapped two-stage runner (detection and embedding in
parallel threads, which uses both cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import celeba_at_640, write_fragment

from perface.face.align import dlib_chip
from perface.face.detect import detect
from perface.face.identity import get_embedder
from perface.face.io import read_image
from perface.face.pipeline import analyze_file, analyze_files_overlapped


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60)
    args = ap.parse_args()
    paths, _ = celeba_at_640(args.n, start=0)
    imgs = [read_image(p) for p in paths[:20]]
    detect(imgs[0])
    t = time.perf_counter()
    faces = [detect(im) for im in imgs]
    det_ms = (time.perf_counter() - t) / len(imgs) * 1000
    chips = [dlib_chip(im, f[0]).crop for im, f in zip(imgs, faces, strict=True) if f]
    emb = {}
    for engine, bs in (("dlib", 1), ("torch", 1), ("torch", 32)):
        e = get_embedder(engine)
        e.embed_chips(chips[:2])
        t = time.perf_counter()
        for i in range(0, len(chips), bs):
            e.embed_chips(chips[i : i + bs])
        emb[(engine, bs)] = (time.perf_counter() - t) / len(chips) * 1000
    analyze_file(paths[0])
    t = time.perf_counter()
    n_faces = sum(len(analyze_file(p).faces) for p in paths)
    seq = n_faces / (time.perf_counter() - t)
    t = time.perf_counter()
    n2 = sum(len(a.faces) for _, a in analyze_files_overlapped(paths))
    par = n2 / (time.perf_counter() - t)
    body = f"""{len(paths)} CelebA photos upscaled to 640 px (longer side), JPEG; {n_faces} faces found.

| stage | figure |
|---|---|
| detection (CenterFace, 640 px) | {det_ms:.1f} ms / image |
| identity embedding, dlib `compute_face_descriptor` | {emb[("dlib", 1)]:.1f} ms / face |
| identity embedding, torch port, batch 1 | {emb[("torch", 1)]:.1f} ms / face |
| identity embedding, torch port, batch 32 | {emb[("torch", 32)]:.1f} ms / face |
| end to end (decode, detect, align, embed), sequential | {seq:.1f} faces / s |
| end to end, detection and embedding overlapped in two threads | {par:.1f} faces / s |

Target: >= 10 faces/s end to end. {"Met." if max(seq, par) >= 10 else "Not met."}"""
    write_fragment("pipeline", "Face pipeline speed at 640 px (issue 2)", body)
    print(np.round([det_ms, seq, par], 2))


if __name__ == "__main__":
    main()
