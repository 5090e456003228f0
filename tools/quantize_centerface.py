"""Write ``src/perface/models/centerface-int8.onnx``: the shipped CenterFace with an 8-bit backbone.

Why: CenterFace was about half of `perface anonymize`'s CPU time on one-face photos (issue 20), and ONNX Runtime
runs this graph about 1.7 times as fast as the float one on this machine's AMD EPYC (AVX-512 VNNI). The detector's
default (``DetectConfig.precision="mixed"``) runs it on the upright whole image and tiles and keeps the float graph
for the turned copies and the re-check's zoomed looks (``docs/benchmarks/recall.md``, "The 8-bit graph").

How (deterministic: running it again writes the same file): the float graph with its weights folded
(:func:`perface.face.detect.strip_initializer_inputs`), converted from opset 9 to 13 (per-channel scales need
it), its nodes named, then ONNX Runtime's static quantization (QDQ, int8 weights per channel, uint8
activations, min/max calibration) of the MobileNetV2 backbone, the upsampling decoder and the output heads left
in float (quantized too, the five landmarks moved: median error against dlib's 68-point fit 0.044 of the face
size rather than 0.040, and one test swap of the astronaut no longer passed a recognizer; with the decoder in
float 0.040, as the float graph, for 12.2 rather than 10.7 ms per run against the float graph's 21.2), on inputs
like those the detector feeds the network. By default (``--calibration public``) they come only from
scikit-image's public-domain / CC0 pictures (the astronaut at many sizes and orientations, alone, pasted small
into the other pictures, and as re-check crops; the face-free pictures whole), so the shipped file owes nothing
to a non-commercial dataset; ``--calibration celeba`` uses 48 CelebA photos of ``../shared/data`` instead (with
the whole graph quantized, on the recall benchmark's busiest images at threshold 0.4 it found 390 of 410 faces,
the public calibration 386 and the float graph 380; the public one is shipped for its licence). The calibration
only sets each activation's range; no picture is stored in the file.

Usage: ``python tools/quantize_centerface.py`` (about 15 s; needs ``onnx`` and scikit-image).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from perface.face.detect import _model_path, _round32, strip_initializer_inputs  # noqa: E402
from perface.face.io import read_image  # noqa: E402

OUT = REPO / "src" / "perface" / "models" / "centerface-int8.onnx"
#: scikit-image pictures whose docstrings say public domain, CC0 or no known copyright restrictions
PUBLIC_PICTURES = ("coffee", "chelsea", "rocket", "camera", "hubble_deep_field", "immunohistochemistry", "coins",
                   "clock", "horse", "text")


def _blob(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)


def _resized(image: np.ndarray, side: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    s = side / max(h, w)
    return cv2.resize(image, (_round32(w * s), _round32(h * s)), interpolation=cv2.INTER_AREA)


def _recheck_crops(image: np.ndarray, box, side: int, ctx: float) -> list[np.ndarray]:
    """A re-check-like input: a square of ``ctx`` times the face box's longer side around its centre, zoomed to
    ``side`` px, at each of the four orientations."""
    import cv2

    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    s = side / (ctx * max(x1 - x0, y1 - y0))
    m = np.float32([[s, 0, side / 2 - cx * s], [0, s, side / 2 - cy * s]])
    crop = cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    return [_blob(np.ascontiguousarray(np.rot90(crop, k))) for k in range(4)]


def calibration_inputs(celeba: Path, n: int) -> list[np.ndarray]:
    """Network inputs like the detector's: whole views at 640 px, turned copies at 320 px, 128 px face crops."""
    import cv2

    from perface.face.detect import DetectConfig, detect

    rows = list(csv.DictReader((celeba / "labels.csv").read_text().splitlines()))[:n]
    blobs = []
    for i, r in enumerate(rows):
        im = read_image(celeba / "images" / r["image"])
        s = 640 / max(im.shape[:2])
        im = cv2.resize(im, (round(im.shape[1] * s), round(im.shape[0] * s)), interpolation=cv2.INTER_CUBIC)
        blobs.append(_blob(_resized(im, 640)))
        blobs.append(_blob(_resized(np.rot90(im, 1 + i % 3), 320)))
        faces = detect(im, DetectConfig(precision="fp32", rotations=(0,)))
        if faces:
            blobs.extend(_recheck_crops(im, faces[0].box, 128, 3.0))
    return blobs


def public_calibration_inputs() -> list[np.ndarray]:
    """The same kinds of network input made only from scikit-image's public-domain / CC0 pictures: the
    astronaut (Eileen Collins, NASA) at many sizes and orientations, alone, pasted small into the other
    pictures (crowd-like scenes) and as re-check crops; and the face-free pictures whole."""
    import cv2
    from skimage import data as skd

    from perface.face.detect import DetectConfig, detect

    astro = skd.astronaut()
    others = []
    for name in PUBLIC_PICTURES:
        try:
            im = getattr(skd, name)()
        except Exception:  # noqa: BLE001 - a picture this scikit-image cannot load offline: use the others
            continue
        im = im[0] if isinstance(im, tuple) else im
        im = np.asarray(im)
        if im.dtype != np.uint8:
            im = (np.clip(im.astype(np.float32) / max(float(im.max()), 1e-6), 0, 1) * 255).astype(np.uint8)
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        others.append(np.ascontiguousarray(im[..., :3]))
    x0, y0, x1, y1 = detect(astro, DetectConfig(precision="fp32", rotations=(0,)))[0].box
    cx, cy, fs = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
    blobs = []
    rng = np.random.default_rng(0)
    for k in range(4):
        turned = np.ascontiguousarray(np.rot90(astro, k))
        for side in (640, 480, 320, 256, 160):
            blobs.append(_blob(_resized(turned, side)))
    for side in (96, 128):
        for ctx in (2.0, 3.0, 4.5):
            blobs.extend(_recheck_crops(astro, (x0, y0, x1, y1), side, ctx))
    head = astro[max(0, int(cy - 1.2 * fs)):int(cy + 1.2 * fs), max(0, int(cx - 1.2 * fs)):int(cx + 1.2 * fs)]
    for i, bg in enumerate(others):
        scene = cv2.resize(bg, (640, 480), interpolation=cv2.INTER_AREA)
        for _ in range(6):  # heads of 24-240 px (faces of about 10-100 px) at random places and turns
            w = int(rng.integers(24, 240))
            patch = np.ascontiguousarray(np.rot90(cv2.resize(head, (w, w), interpolation=cv2.INTER_AREA),
                                                  int(rng.integers(0, 4))))
            x, y = int(rng.integers(0, 640 - w)), int(rng.integers(0, 480 - w))
            scene[y:y + w, x:x + w] = patch
        blobs.append(_blob(_resized(scene, 640)))
        blobs.append(_blob(_resized(np.ascontiguousarray(np.rot90(scene, 1 + i % 3)), 320)))
        blobs.append(_blob(_resized(bg, 640)))
    return blobs


def quantize(out: Path, celeba: Path | None, n: int) -> None:
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    blobs = calibration_inputs(celeba, n) if celeba is not None else public_calibration_inputs()

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter({"input.1": b} for b in blobs)

        def get_next(self):
            return next(self._it, None)

    with open(_model_path("centerface.onnx"), "rb") as fh:
        model = onnx.load_from_string(strip_initializer_inputs(fh.read()))
    model = version_converter.convert_version(model, 13)
    for i, node in enumerate(model.graph.node):
        node.name = node.name or f"node{i}"
    ops = [node.op_type for node in model.graph.node]
    decoder = [node.name for node in model.graph.node[ops.index("ConvTranspose"):]]  # upsampling path + heads
    out = out.resolve()
    cwd = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="perface-quant-") as tmp:
        src = Path(tmp) / "centerface-opset13.onnx"
        onnx.save(model, src)
        os.chdir(tmp)  # the quantizer leaves its scratch files in the working directory
        try:
            quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=decoder,
                            extra_options={"CalibTensorRangeSymmetric": False})
        finally:
            os.chdir(cwd)
    what = f"{n} CelebA photos" if celeba is not None else "scikit-image's public-domain pictures"
    print(f"{out}: {out.stat().st_size / 1e6:.1f} MB from {len(blobs)} calibration inputs ({what})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--photos", type=int, default=48)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--calibration", choices=("public", "celeba"), default="public")
    args = ap.parse_args()
    celeba = None
    if args.calibration == "celeba":
        celeba = args.shared / "celeba"
        if not (celeba / "labels.csv").exists():
            raise SystemExit(f"{celeba}: CelebA folder with labels.csv not found (pass --shared)")
    quantize(args.out, celeba, args.photos)


if __name__ == "__main__":
    main()
