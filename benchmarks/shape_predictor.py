"""dlib's shape predictors in NumPy (`perface.face.shape_predictor`) against dlib: the same points, load and call time.

Why: issue 20 replaced dlib's 68-point predictor, whose 100 MB file dlib reads in 0.55 s of CPU in every run, by a
NumPy port of the same regression trees read from a memory-mapped cache; it is only allowed because it gives dlib's
points exactly. On CelebA photos (the library's draw), every detected face's box, shifted and resized copies of it,
and boxes cut by each border are predicted by both, and the points compared; then both are timed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import numpy as np
from _common import REPO, shared_data, write_fragment

sys.path.insert(0, str(REPO / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=150, help="CelebA photos")
    args = ap.parse_args()
    import os

    import dlib
    import face_recognition_models as frm

    from perface.anonymize.runner import use_one_thread_runtimes
    from perface.face.io import read_image
    from perface.face.shape_predictor import load_shape_predictor, probe_boxes

    use_one_thread_runtimes()
    root = shared_data() / "celeba" / "images"
    images = [read_image(p) for p in sorted(root.glob("*.jpg"))[: args.n]]
    cases = [(im, r) for im in images for r in probe_boxes(im)]
    rows = []
    models = ((68, frm.pose_predictor_model_location()), (5, frm.pose_predictor_five_point_model_location()))
    for points, path in models:
        t = time.process_time()
        theirs = dlib.shape_predictor(path)
        dlib_load = time.process_time() - t
        with tempfile.TemporaryDirectory() as cache:
            os.environ["PERFACE_CACHE_DIR"] = cache
            t = time.process_time()
            load_shape_predictor(path)
            first = time.process_time() - t
            t = time.process_time()
            ours = load_shape_predictor(path)
            cached = time.process_time() - t
            same, worst, t_theirs, t_ours = 0, 0, [], []
            for im, r in cases:
                t = time.perf_counter()
                shape = theirs(im, dlib.rectangle(*r))
                t_theirs.append(time.perf_counter() - t)
                want = np.array([(p.x, p.y) for p in shape.parts()])
                t = time.perf_counter()
                got = ours(im, r)
                t_ours.append(time.perf_counter() - t)
                same += bool(np.array_equal(got, want))
                worst = max(worst, int(np.abs(got - want).max()))
            del ours  # its memory map, before the folder goes
        rows.append(f"| {points} | {same} of {len(cases)} | {worst} | {dlib_load:.2f} s | {first:.1f} s | "
                    f"{cached * 1e3:.0f} ms | {statistics.median(t_theirs) * 1e3:.2f} ms | "
                    f"{statistics.median(t_ours) * 1e3:.2f} ms |")
        print(rows[-1], flush=True)
    head = ("| model | same points as dlib | largest difference (px) | dlib load | port: first load (decode, cache) "
            "| port: later loads | dlib call | port call |")
    body = f"""`python benchmarks/shape_predictor.py --n {args.n}`: {args.n} CelebA photos, {len(cases)} boxes (each
detected face's box, a shifted and resized copy, a shrunk one, and three boxes cut by the borders of each photo); points
compared exactly (dlib returns integer pixel positions). Load: CPU seconds; calls: median wall time, one thread.

{head}
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

The 68-point model runs through the port (one call a face; the load it saves is paid once per process), the
5-point one through dlib (a call after every swap tried, where dlib's faster call matters more than its 0.06 s
load)."""
    write_fragment("shape_predictor", "Landmark models: the NumPy port against dlib (issue 20)", body)


if __name__ == "__main__":
    main()
