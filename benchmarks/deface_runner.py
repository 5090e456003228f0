"""Time deface (ORB-HD/deface 1.5.0) blurring the same images, for the side-by-side speed figure.

Run with a Python that has deface installed (it pulls opencv-python 5 when installed with its
dependencies, so install it alone): ``python -m venv /tmp/defacevenv && /tmp/defacevenv/bin/pip install
deface --no-deps imageio imageio-ffmpeg scikit-image "opencv-python-headless<5" onnx onnxruntime tqdm``,
then ``/tmp/defacevenv/bin/python benchmarks/deface_runner.py IMAGE... --out DIR``. Prints images/s as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import imageio.v2 as iio
from deface.centerface import CenterFace
from deface.deface import anonymize_frame


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("images", nargs="+")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    cf = CenterFace(in_shape=None, backend="auto")
    t0 = time.perf_counter()
    for p in args.images:
        frame = iio.imread(p)
        dets, _ = cf(frame, threshold=0.2)
        anonymize_frame(dets, frame, mask_scale=1.3, replacewith="blur", ellipse=True, draw_scores=False,
                        replaceimg=None, mosaicsize=20)
        iio.imwrite(os.path.join(args.out, os.path.basename(p)), frame)
    secs = time.perf_counter() - t0
    print(json.dumps({"images": len(args.images), "seconds": secs, "images_per_s": len(args.images) / secs}))


if __name__ == "__main__":
    main()
