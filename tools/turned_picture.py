"""Draw docs/images/turned_mesh_swap.jpg: synthetic faces turned past the yaw guard, before and after.

Rows: the AVFS StyleGAN3 faces (synthetic, CC BY-NC-SA 4.0) whose five detector landmarks give a yaw of more than 45
degrees; the anonymizer with ``turned_swap=None`` (such faces blurred, the defaults before 2026-12-05 15:10); with
the default ``turned_swap="mesh"``. Each output is labelled with what the report says of the face.

    python tools/turned_picture.py ../shared/data/avfs_stylegan3/images
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from perface.anonymize.anonymizer import AnonymizeConfig, Anonymizer  # noqa: E402
from perface.face.detect import detect, five_point_yaw  # noqa: E402
from perface.face.io import read_image  # noqa: E402

SIDE = 200


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = cv2.resize(img, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    cv2.rectangle(out, (0, SIDE - 18), (SIDE, SIDE), (0, 0, 0), -1)
    cv2.putText(out, text, (4, SIDE - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else REPO.parent / "shared/data/avfs_stylegan3/images")
    turned = []
    for path in sorted(folder.glob("*.png"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0):
        img = read_image(path)
        faces = detect(img)
        if faces and abs(five_point_yaw(faces[0].landmarks)) > 45:
            turned.append((path, img, five_point_yaw(faces[0].landmarks)))
    mesh = Anonymizer(AnonymizeConfig())
    blur = Anonymizer(replace(mesh.config, turned_swap=None))
    cols = []
    for path, img, yaw in turned:
        col = [_label(img, f"{path.name}, yaw {yaw:.0f}")]
        for an in (blur, mesh):
            out, recs = an.anonymize_array(img, seed=0)
            rec = recs[0]
            what = f"swap, donor {rec.donor_id}" if rec.method == "swap" else rec.method
            col.append(_label(out, what))
        cols.append(np.vstack(col))
    sheet = np.hstack(cols)
    cv2.imwrite(str(REPO / "docs/images/turned_mesh_swap.jpg"), sheet[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"{len(turned)} turned faces -> docs/images/turned_mesh_swap.jpg")


if __name__ == "__main__":
    main()
