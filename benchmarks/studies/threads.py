"""How many intra-op threads each ONNX Runtime session should get: one or two, for PerFace's networks and detector.

Why: ``PERFACE_THREADS`` (default 1) sets the threads of the sessions built by :mod:`perface.backbones.runtime`;
the CenterFace detector (``perface.face.detect``) builds its own session with ONNX Runtime's default (two on this
machine). Each row alternates the two settings in one process, several rounds, and reports medians of wall and
CPU time (CPU time counts every thread, spinning included). Writes the section "Session threads".
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import REPO, celeba_at_640, write_fragment  # noqa: E402

sys.path.insert(0, str(REPO / "src"))


def _alternate(fns: dict[str, object], rounds: int, per: int) -> dict[str, tuple[float, float]]:
    """Median (wall ms, CPU ms) per item of each setting, the settings alternating round by round."""
    res: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            fn()  # type: ignore[operator]
            res[k].append(((time.perf_counter() - t) * 1000 / per, (time.process_time() - c) * 1000 / per))
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in res.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import numpy as np
    import onnxruntime as ort

    import perface.face.detect as detect_mod
    from perface.anonymize.anonymizer import AnonymizeConfig, Anonymizer, anonymize_files
    from perface.backbones.onnx_graphs import dlib_features_graph, tfjs_graph
    from perface.backbones.runtime import cache_dir, onnx_net
    from perface.face.io import read_image

    paths, _ = celeba_at_640(args.n, start=100)
    images = [read_image(p) for p in paths]
    cfg = detect_mod.DetectConfig(threshold=0.4)
    rows = []
    dets = {"1": detect_mod.CenterFaceDetector(threads=1), "2": detect_mod.CenterFaceDetector(threads=2)}
    for d in dets.values():
        d(images[0], cfg)
    r = _alternate({k: (lambda d=d: [d(im, cfg) for im in images]) for k, d in dets.items()}, args.rounds, len(images))
    rows.append(("CenterFace detection, 640 px image", r))
    onnx_net(dlib_features_graph())
    onnx_net(tfjs_graph("mobilefacenet", None))
    x4 = np.random.default_rng(0).uniform(-0.5, 0.5, (4, 3, 150, 150)).astype(np.float32)
    y1 = np.random.default_rng(0).uniform(-1, 1, (1, 112, 112, 3)).astype(np.float32)
    for label, graph, x in (("dlib ResNet, batch 4 (one face: 2 views and mirrors)", dlib_features_graph(), x4),
                            ("dlib ResNet, batch 1 (an identity check)", dlib_features_graph(), x4[:1]),
                            ("MobileFaceNet, batch 1", tfjs_graph("mobilefacenet", None), y1)):
        sessions = {}
        for th in ("1", "2"):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = int(th), 1, 3
            sessions[th] = ort.InferenceSession(str(cache_dir() / graph.filename), opts,
                                                providers=["CPUExecutionProvider"])
        name = sessions["1"].get_inputs()[0].name
        r = _alternate({k: (lambda s=s, feed={name: x}: [s.run(None, feed) for _ in range(20)])
                        for k, s in sessions.items()},
                       args.rounds, 20)
        rows.append((label, r))
    an = Anonymizer(AnonymizeConfig())
    tmp = Path(tempfile.mkdtemp())

    def run_with(d: object) -> None:
        detect_mod._DETECTORS["centerface"] = d
        shutil.rmtree(tmp / "out", ignore_errors=True)
        anonymize_files(paths, tmp / "out", an)

    run_with(dets["2"])
    r = _alternate({k: (lambda d=d: run_with(d)) for k, d in dets.items()}, args.rounds, len(paths))
    rows.append(("whole `anonymize_files` per image (networks 1 thread; detector as the column)", r))
    shutil.rmtree(tmp, ignore_errors=True)
    table = "\n".join(f"| {label} | {r['1'][0]:.1f} / {r['1'][1]:.1f} | {r['2'][0]:.1f} / {r['2'][1]:.1f} |"
                      for label, r in rows)
    body = f"""`python benchmarks/studies/threads.py` ({args.n} CelebA photos at 640 px, {args.rounds} alternating
rounds, medians; 1-minute load average {os.getloadavg()[0]:.1f} at the end: other jobs shared the 2 cores).

| what (per item) | 1 thread: wall / CPU ms | 2 threads: wall / CPU ms |
|---|---:|---:|
{table}

One thread per session is the default of `PERFACE_THREADS` for PerFace's own networks. The detector's session
is made in `perface.face.detect` with ONNX Runtime's default (two threads here); its row shows what one thread
would save."""
    write_fragment("threads", "Session threads (issue 20)", body)


if __name__ == "__main__":
    main()
