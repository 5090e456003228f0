"""Speed of the default PerFace model's `embed` on pre-aligned faces (two views, mirror averaging).

Target (issue 4): >= 20 faces/s on this 2-core machine. Chips are the bundled test chips, repeated.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from _common import REPO, write_fragment

from perface.face.io import read_image
from perface.metric.model import load


def main() -> None:
    model = load("default")
    chips = [read_image(p) for p in sorted((REPO / "tests" / "data" / "chips").glob("*.jpg"))]
    chips = (chips * 7)[:128]
    views = [chips for _ in model.config.views]  # the same chip for both views: speed only
    model.embed_views([v[:4] for v in views])
    rows = []
    for bs in (1, 32, 64):
        n = 32 if bs == 1 else 128
        t = time.perf_counter()
        model.embed_views([v[:n] for v in views], batch_size=bs)
        rows.append((bs, n / (time.perf_counter() - t)))
    img = read_image(Path(REPO / "src" / "perface" / "examples" / "group.jpg"))
    t = time.perf_counter()
    for _ in range(5):
        model.embed([img])
    full = 5 / (time.perf_counter() - t)
    body = "| input | batch | faces / s |\n|---|---|---|\n" + "\n".join(
        f"| aligned views (2 views x mirror = 4 backbone passes per face) | {bs} | {fps:.1f} |" for bs, fps in rows)
    body += f"\n| whole image (detect + align + embed, largest face) | 1 | {full:.1f} |\n\n"
    body += f"Target >= 20 faces/s on aligned crops: {'met' if max(f for _, f in rows) >= 20 else 'not met'}."
    write_fragment("model_speed", "Default model embedding speed (issue 4)", body)
    print(np.round([f for _, f in rows], 1))


if __name__ == "__main__":
    main()
