"""Issue 18: how far a model's embedding of a face moves between two detectors' boxes of it.

The metric's chips are cut from the detected face: dlib's aligned chips follow the landmarks, a ``second_crop`` "box"
crop follows the box itself. The gallery's donors are embedded with the reference detector (CenterFace, float), the
anonymizer's faces with its own (threshold 0.4, 8-bit upright passes), so the embedding should not depend much on
which of the two found the face. Prints, per model folder (or "default"), the cosine between the two embeddings of
the largest face over 60 CelebA photos (every 25th file).

    python benchmarks/studies/crop_jitter.py default runs/faceres_box/model
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import shared_data  # noqa: E402

from perface.anonymize.anonymizer import AnonymizeConfig  # noqa: E402
from perface.face.detect import REFERENCE_DETECT, detect  # noqa: E402
from perface.face.io import read_image  # noqa: E402
from perface.metric.onnx_model import load_inference  # noqa: E402


def main(models: list[str]) -> None:
    paths = sorted((shared_data() / "celeba" / "images").glob("*.jpg"))[::25][:60]
    anonymizer_detect = AnonymizeConfig().detect
    for name in models:
        model = load_inference(name)
        cos = []
        for p in paths:
            image = read_image(p)
            a, b = detect(image, REFERENCE_DETECT), detect(image, anonymizer_detect)
            if not a or not b:
                continue
            va, vb = (model.embed_views([[c] for c in model.align(image, max(f, key=lambda x: x.size))])[0]
                      for f in (a, b))
            cos.append(float(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb)))
        c = np.array(cos)
        print(f"{name}: {len(c)} faces, cosine min {c.min():.4f}, median {np.median(c):.5f}, mean {c.mean():.5f}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["default"])
