"""Visual check and timing of the classic face swap.

Writes docs/images/swap_example.jpg: row 1 target | donor | result with skimage's astronaut as target
and a synthetic OMI face as donor; row 2 the same donor on a moderately turned OMI face. Then prints
ms per face (warp + colour + blend) at 640 px. Needs /work/shared/data/omi (CC BY-NC-SA 4.0; the
example image inherits that licence).

Usage: python benchmarks/swap_example.py [--donor PATH] [--turned PATH] [--out PATH] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import cv2
import dlib
import numpy as np
import skimage.data

from perface.anonymize.swap import ClassicSwapper
from perface.face.landmarks import predict_landmarks68

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DONOR = Path("/work/shared/data/omi/images/1.jpg")
DEFAULT_TURNED = Path("/work/shared/data/omi/images/314.jpg")


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path))
    if img is None:
        raise SystemExit(f"cannot read {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def largest_face_landmarks(image: np.ndarray) -> np.ndarray:
    """Detect faces with dlib's HOG detector and return the 68 landmarks of the largest one."""
    rects = dlib.get_frontal_face_detector()(image, 1)
    if not rects:
        raise SystemExit("no face found")
    r = max(rects, key=lambda r: r.width() * r.height())
    return predict_landmarks68(image, (r.left(), r.top(), r.right(), r.bottom()))


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.putText(out, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def tile(img: np.ndarray, text: str, size: int = 320) -> np.ndarray:
    return label(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA), text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--donor", type=Path, default=DEFAULT_DONOR)
    ap.add_argument("--turned", type=Path, default=DEFAULT_TURNED, help="second, turned target ('' to skip)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/images/swap_example.jpg")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--blend", default="seamless", choices=["seamless", "feather"])
    args = ap.parse_args()

    target = skimage.data.astronaut()
    donor = read_rgb(args.donor)
    t_lm = largest_face_landmarks(target)
    d_lm = largest_face_landmarks(donor)
    swapper = ClassicSwapper(blend=args.blend)
    res = swapper.swap(target, t_lm, donor, d_lm)
    print("astronaut:", res.ok, res.reason, res.info)

    crop = (slice(36, 246), slice(120, 330))  # 210 px around the face, shown larger
    rows = [np.hstack([tile(target[crop], "target"), tile(donor, "donor"), tile(res.image[crop], "result")])]
    if str(args.turned):
        turned = read_rgb(args.turned)
        r2 = swapper.swap(turned, largest_face_landmarks(turned), donor, d_lm)
        print("turned:", r2.ok, r2.reason, r2.info)
        yaw = r2.info.get("target_yaw", float("nan"))
        rows.append(
            np.hstack(
                [tile(turned, f"target, yaw {yaw:.0f}"), tile(donor, "donor"), tile(r2.image, "result")]
            )
        )
    sheet = np.vstack(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if args.out.suffix.lower() in (".jpg", ".jpeg") else []
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), params)
    print("wrote", args.out)

    # Timing at 640 px: the whole astronaut upscaled 512 -> 640 (a small face) and a 210 px crop around
    # her face upscaled to 640 (a face filling the frame); landmarks are scaled with the image.
    cases = {
        "640 px image, whole photo": (target, t_lm),
        "640 px image, face fills frame": (target[40:250, 120:330], t_lm - np.float32([120, 40])),
    }
    for name, (img, lm) in cases.items():
        s = 640 / img.shape[1]
        big = cv2.resize(img, (640, 640), interpolation=cv2.INTER_CUBIC)
        big_lm = lm * s
        swapper.swap(big, big_lm, donor, d_lm)  # warm-up (triangulation cache)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            r = swapper.swap(big, big_lm, donor, d_lm)
            times.append((time.perf_counter() - t0) * 1000)
        print(
            f"{time.strftime('%Y-%m-%d')}: classic swap ({args.blend}), {name} "
            f"(inter-ocular {r.info['inter_ocular_px']:.0f} px): median {np.median(times):.1f} ms/face, "
            f"min {np.min(times):.1f} ms ({args.repeat} runs, {platform.machine()}, "
            f"{os.cpu_count()} cores, cv2 {cv2.__version__})"
        )


if __name__ == "__main__":
    main()
