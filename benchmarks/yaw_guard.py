"""The anonymizer's yaw guard on real near-profile photos: the five-landmark yaw (the detector's nose tip against
its eyes and mouth corners, :func:`perface.face.detect.five_point_yaw`) against the swapper's 68-point estimate
(:func:`perface.anonymize.swap.estimate_yaw`, whose 40 limit never fired: its scale ends at 45).

Photos: every ``--step``-th UTKFace chip of ``../shared/data/utkface`` (aligned, cropped faces of all poses); the
largest face each. Profiles are found by the five-landmark yaw and checked by eye on the contact sheet it writes
(``runs/yaw_guard/profiles.png``, the 24 most turned). Writes docs/benchmarks/yaw_guard.md.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from _common import REPO, shared_data, write_fragment

from perface.anonymize.anonymizer import AnonymizeConfig
from perface.anonymize.swap import ClassicSwapper, estimate_yaw
from perface.face.detect import DetectConfig, detect, five_point_yaw
from perface.face.io import read_image
from perface.face.landmarks import predict_landmarks68


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--step", type=int, default=4)
    ap.add_argument("--dataset", default="utkface", help="a ../shared/data folder with images/: utkface or celeba")
    args = ap.parse_args()
    t0 = time.perf_counter()
    files = sorted((shared_data() / args.dataset / "images").glob("*.jpg"))[:: args.step]
    cfg = DetectConfig(rotations=(0,), tiles=False)
    rows = []
    for p in files:
        img = read_image(p)
        faces = detect(img, cfg)
        if not faces:
            continue
        f = max(faces, key=lambda f: f.width * f.height)
        rows.append((p, img, f, five_point_yaw(f.landmarks), estimate_yaw(predict_landmarks68(img, f.box))))
    y5 = np.array([abs(r[3]) for r in rows])
    y68 = np.array([abs(r[4]) for r in rows])
    guard = AnonymizeConfig().max_yaw_deg
    swap_limit = ClassicSwapper().max_yaw_deg
    lines = ["| five-landmark yaw | photos | of them, swapper's 68-point estimate > its limit "
             f"({swap_limit:.0f}) | median 68-point estimate |", "|---|---|---|---|"]
    for lo, hi in ((0, 15), (15, 30), (30, 45), (45, 60), (60, 91)):
        m = (y5 >= lo) & (y5 < hi)
        med = f"{np.median(y68[m]):.1f}" if m.any() else "-"
        lines.append(f"| {lo}-{min(hi, 90)} | {int(m.sum())} | {int((y68[m] > swap_limit).sum())} | {med} |")
    order = np.argsort(-y5)[:24]
    tiles = []
    for i in order:
        _, img, f, a, b = rows[i]
        t = cv2.resize(img, (160, 160))
        cv2.putText(t, f"{a:.0f} / {b:.0f}", (4, 150), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
        tiles.append(t)
    out = REPO / "runs" / "yaw_guard"
    out.mkdir(parents=True, exist_ok=True)
    sheet = np.vstack([np.hstack(tiles[r * 8:(r + 1) * 8]) for r in range(3)])
    cv2.imwrite(str(out / "profiles.png"), sheet[..., ::-1])
    body = f"""{len(files)} {args.dataset} photos (every {args.step}th), {len(rows)} with a detected face; the largest
face each.
The guard hides a face whose five-landmark yaw exceeds `AnonymizeConfig.max_yaw_deg` = {guard:.0f}; the swapper's own
68-point guard refuses above {swap_limit:.0f} on a scale that ends at 45. {time.perf_counter() - t0:.0f} s.

{chr(10).join(lines)}

Faces the new guard hides: {int((y5 > guard).sum())} of {len(rows)} ({100 * (y5 > guard).mean():.1f} %); the 68-point
guard alone: {int((y68 > swap_limit).sum())}. Contact sheet of the 24 most turned (five-landmark / 68-point yaw):
`runs/yaw_guard/profiles.png`."""
    print(body)
    body = f"Command: `python benchmarks/yaw_guard.py --dataset {args.dataset} --step {args.step}`.\n\n" + body
    write_fragment("yaw_guard", "Yaw guard on near-profile photos (issue \"Fail closed for real\")", body)


if __name__ == "__main__":
    main()
