"""Draw docs/images/blur_around.jpg: small faces every donor failed for, blurred, or swapped over the blurred region.

The AVFS StyleGAN3 faces (synthetic, CC BY-NC-SA 4.0) are shrunk so that the face is about ``--face`` px wide and
anonymized with the defaults; the faces whose report says ``blurred_around`` (every donor and every softened swap
was refused by a consulted network, and the closest swap laid over the fallback's blur of the face region passed)
are drawn: the input, the fallback's blur (``blur_around`` off, the defaults before 2026-12-05 18:40), the swap over
the hard-edged oval (``around_edge="hard"``, the default before round 37 on 2026-12-06) and the default output,
each cut around the face (twice its size) and enlarged to 200 px.

    python tools/blur_around_picture.py ../shared/data/avfs_stylegan3/images --face 48
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from perface.anonymize.anonymizer import AnonymizeConfig, Anonymizer  # noqa: E402
from perface.face.detect import box_iou, detect  # noqa: E402
from perface.face.io import read_image  # noqa: E402

SIDE = 200


def _cut(img: np.ndarray, box, text: str) -> np.ndarray:
    """The region around ``box`` (twice its size), enlarged to SIDE, with a caption."""
    x1, y1, x2, y2 = box
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1)
    h, w = img.shape[:2]
    a, b = int(max(0, cy - half)), int(min(h, cy + half))
    c, d = int(max(0, cx - half)), int(min(w, cx + half))
    out = cv2.resize(img[a:b, c:d], (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
    cv2.rectangle(out, (0, SIDE - 18), (SIDE, SIDE), (0, 0, 0), -1)
    cv2.putText(out, text, (4, SIDE - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", nargs="?", default=str(REPO.parent / "shared/data/avfs_stylegan3/images"))
    ap.add_argument("--face", type=float, default=48.0, help="face width to shrink each photo to (px)")
    ap.add_argument("--most", type=int, default=6, help="columns drawn at most")
    args = ap.parse_args()
    default = Anonymizer(AnonymizeConfig())
    before = Anonymizer(replace(default.config, blur_around=None, blur_around_sharp=None))
    hard = Anonymizer(replace(default.config, around_edge="hard"))
    cols, seen = [], 0
    for path in sorted(Path(args.folder).glob("*.png"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0):
        img = read_image(path)
        faces = detect(img)
        if not faces:
            continue
        scale = args.face / faces[0].width
        small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        seen += 1
        out, recs = default.anonymize_array(small, seed=0)
        box = tuple(v * scale for v in faces[0].box)
        rec = max(recs, key=lambda r: box_iou(r.box, box), default=None)
        if rec is None or not rec.blurred_around:
            continue
        old, _ = before.anonymize_array(small, seed=0)
        oval, oval_recs = hard.anonymize_array(small, seed=0)
        same = any(r.blurred_around and r.donor_id == rec.donor_id for r in oval_recs)
        soft = f", soft {rec.softened:g}" if rec.softened else ""
        cols.append(np.vstack([_cut(small, rec.box, f"{path.name}, {rec.box[2] - rec.box[0]:.0f} px"),
                               _cut(old, rec.box, "fallback blur"),
                               _cut(oval, rec.box, "hard edge" + ("" if same else " (other path)")),
                               _cut(out, rec.box, f"soft edge: donor {rec.donor_id}{soft}")]))
        print(f"{path.name}: {rec.reason}", flush=True)
        if len(cols) >= args.most:
            break
    if not cols:
        sys.exit(f"none of {seen} faces at {args.face:g} px took the path; try another --face")
    sheet = np.hstack(cols)
    cv2.imwrite(str(REPO / "docs/images/blur_around.jpg"), sheet[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"{len(cols)} such faces among the first {seen} at {args.face:g} px -> docs/images/blur_around.jpg")


if __name__ == "__main__":
    main()
