"""Where the detector's time goes (issue 20): the network runs of each stage on a 640 px one-face photo and on
a 1920x1080 five-face image, with their input sizes, counts, wall and CPU milliseconds; and the session setting
(one thread without spin-waiting, the default, against ONNX Runtime's default of one spinning thread per core).

Stages: the plain whole-image pass, the other views (turned copies of the whole image, native-resolution tiles and
their turned copies; see ``perface.face.detect.plan_views``), the zoomed look at the plain pass's faces
(``turn``) and the re-check of the other candidates (``recheck``). The images are the ones of
``benchmarks/pipeline.py`` (CelebA photos upscaled to 640 px) and ``benchmarks/anonymize_speed.py`` (five CelebA
photos on a 1920x1080 backdrop). CPU time counts every thread of the process; other jobs sharing the cores
inflate wall time much more than CPU time, so the load average is written beside the figures.

    python benchmarks/detect_speed.py [--n 12] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from _common import celeba_at_640, write_fragment
from anonymize_speed import five_face_images

from perface.face.detect import CenterFaceDetector, DetectConfig
from perface.face.io import read_image


def profile(det: CenterFaceDetector, images: list, cfg: DetectConfig) -> dict[tuple[str, tuple], list[float]]:
    """(stage, input shape) -> [runs, wall ms, CPU ms] summed over ``images``, per image."""
    acc: dict[tuple[str, tuple], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    stage = ["?"]
    run = det._run

    def timed_run(batch):
        t, c = time.perf_counter(), time.process_time()
        out = run(batch)
        a = acc[(stage[0], tuple(batch.shape[1:3]))]
        a[0] += 1
        a[1] += (time.perf_counter() - t) * 1000
        a[2] += (time.process_time() - c) * 1000
        return out

    def staged(name, fn):
        def call(*args, **kwargs):
            stage[0] = name
            return fn(*args, **kwargs)
        return call

    views = det.run_views

    def per_view(image, vs, low, iou):  # one call per view, so each is named (same result: the views are cat)
        from perface.face.detect import _Cands

        parts = []
        for v in vs:
            stage[0] = f"{v.kind} at {v.rotation} deg"
            parts.append(views(image, [v], low, iou))
        return _Cands.cat(parts)

    det._run = timed_run
    det.whole_pass = staged("whole image, plain pass", det.whole_pass)
    det.run_views = per_view
    det.turn = staged("zoomed look at the plain pass's faces", det.turn)
    det.recheck = staged("re-check of the other candidates", det.recheck)
    try:
        for im in images:
            det.detect_with_unsure(im, cfg)
    finally:
        for name in ("_run", "whole_pass", "run_views", "turn", "recheck"):
            delattr(det, name)
    return {k: [v[0] / len(images), v[1] / len(images), v[2] / len(images)] for k, v in acc.items()}


def spinning_detector() -> CenterFaceDetector:
    """A detector whose session has ONNX Runtime's defaults (one spinning intra-op thread per core): the
    setting before this change."""
    import onnxruntime as ort

    from perface.face.detect import _model_path, strip_initializer_inputs

    det = CenterFaceDetector()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    with open(_model_path("centerface.onnx"), "rb") as fh:
        model = strip_initializer_inputs(fh.read())
    det.session = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    return det


def alternate(dets: dict[str, CenterFaceDetector], images: list, cfg: DetectConfig,
              rounds: int) -> dict[str, tuple[float, float]]:
    """Median (wall ms, CPU ms) per image of each detector, alternating round by round."""
    res: dict[str, list[tuple[float, float]]] = {k: [] for k in dets}
    for _ in range(rounds):
        for k, det in dets.items():
            t, c = time.perf_counter(), time.process_time()
            for im in images:
                det.detect_with_unsure(im, cfg)
            res[k].append(((time.perf_counter() - t) * 1000 / len(images),
                           (time.process_time() - c) * 1000 / len(images)))
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in res.items()}


def batching(det: CenterFaceDetector, rounds: int) -> list[str]:
    """Rows: CPU ms per input run one by one against as one batch (the re-check's 4 orientations of a 128 px
    crop; the 3 turned copies of a 1080p tile), and the largest difference between their outputs."""
    import numpy as np

    rows = []
    rng = np.random.default_rng(0)
    for label, side, n in (("re-check crop, 4 orientations", 128, 4), ("turned tile copies of a 1080p image", 544, 3)):
        x = rng.uniform(0, 255, (n, 3, side, side)).astype(np.float32)
        det.session.run(None, {"input.1": x})
        one = batch = 0.0
        for _ in range(rounds):
            c = time.process_time()
            singles = [det.session.run(None, {"input.1": x[i : i + 1]}) for i in range(n)]
            one += time.process_time() - c
            c = time.process_time()
            together = det.session.run(None, {"input.1": x})
            batch += time.process_time() - c
        diff = max(float(np.abs(np.concatenate([s[k] for s in singles]) - together[k]).max())
                   for k in range(len(together)))
        rows.append(f"| {label} | {n} x {side} x {side} | {one / rounds / n * 1000:.1f} | "
                    f"{batch / rounds / n * 1000:.1f} | {diff:.1e} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12, help="640 px photos (and a third as many 1080p images)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    paths, _ = celeba_at_640(args.n, start=0)
    kinds = {"640 px one-face photo": [read_image(p) for p in paths],
             "1920x1080, five faces": [read_image(p) for p in five_face_images(
                 max(2, args.n // 3), Path(tempfile.mkdtemp(prefix="perface-detspeed-")))]}
    cfg = DetectConfig(threshold=0.4)  # the anonymizer's threshold (it also keeps the unsure regions)
    det = CenterFaceDetector()
    det.detect_with_unsure(kinds["640 px one-face photo"][0], cfg)
    lines = [f"`python benchmarks/detect_speed.py --n {args.n} --rounds {args.rounds}`; `DetectConfig(threshold=0.4)`"
             " (the anonymizer's setting: tiles, turned copies at half resolution, re-check).", ""]
    for kind, images in kinds.items():
        prof = profile(det, images, cfg)
        lines += [f"### {kind}: network runs per image ({len(images)} images)", "",
                  "| stage | network input (h x w) | runs | wall ms | CPU ms |", "|---|---|---:|---:|---:|"]
        by_stage: dict[str, list] = defaultdict(lambda: [set(), 0.0, 0.0, 0.0])
        for (stage, shape), (n, wall, cpu) in prof.items():
            b = by_stage[stage]
            b[0].add(shape)
            b[1], b[2], b[3] = b[1] + n, b[2] + wall, b[3] + cpu
        for stage, (shapes, n, wall, cpu) in sorted(by_stage.items(), key=lambda kv: -kv[1][3]):
            sizes = ", ".join(f"{h} x {w}" for h, w in sorted(shapes, key=lambda s: (-s[0] * s[1], s)))
            lines.append(f"| {stage} | {sizes} | {n:.1f} | {wall:.1f} | {cpu:.1f} |")
        tot = [sum(v[i] for v in prof.values()) for i in range(3)]
        lines += [f"| all runs | | {tot[0]:.1f} | {tot[1]:.1f} | {tot[2]:.1f} |", ""]
    dets = {"1 thread, no spin-waiting (default)": det, "ONNX Runtime's default (2 spinning threads)":
            spinning_detector()}
    lines += ["### Session setting, alternating rounds (median ms per image, wall / CPU)", "",
              "| image | " + " | ".join(dets) + " |", "|---|" + "---:|" * len(dets)]
    for kind, images in kinds.items():
        r = alternate(dets, images, cfg, args.rounds)
        lines.append(f"| {kind} | " + " | ".join(f"{r[k][0]:.0f} / {r[k][1]:.0f}" for k in dets) + " |")
    lines += ["", "### Batching same-size runs (CPU ms per input, one thread)", "",
              "| runs | inputs | one by one | one batch | largest output difference |", "|---|---|---:|---:|---:|"]
    lines += batching(det, args.rounds)
    lines += ["", "Batching shows no consistent gain on this CPU (the same outputs; per input a batch cost more in "
              "one quiet-ish run, 2.6 against 2.3 ms for the re-check crops and 47 against 43 ms for the tiles, and "
              "at most about 15 % less in others, within the noise of the loaded machine), so the views run one "
              "by one. The whole-image pass and every view are padded to multiples of "
              "32 only (the network is fully convolutional), and an image of at most `max_side` px gets no tiles.",
              "", f"1-minute load average at the end: {os.getloadavg()[0]:.1f} (above 1: other jobs shared the "
              "machine's 2 cores, which inflates wall time above all)."]
    write_fragment("detect_speed", "Detection cost per stage (issue 20)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
