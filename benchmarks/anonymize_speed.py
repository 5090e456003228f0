"""End-to-end anonymization speed at 640 px with one face, side by side with deface blurring the same images.

Images: CelebA photos (one labelled face each) upscaled to 640 px on the longer side. PerFace runs
`perface anonymize` end to end in-process (decode, detect, select, swap, identity check, write, report);
deface runs its own detector and blur via benchmarks/deface_runner.py in a separate venv
($DEFACE_PYTHON, default /tmp/defacevenv/bin/python). Target: >= 2 images/s for PerFace.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

from _common import REPO, celeba_at_640, write_fragment

from perface.anonymize.anonymizer import AnonymizeConfig, Anonymizer, anonymize_files


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    args = ap.parse_args()
    paths, tmp = celeba_at_640(args.n, start=100)
    an = Anonymizer(AnonymizeConfig())
    anonymize_files(paths[:2], tmp / "warm", an)
    t = time.perf_counter()
    rep = anonymize_files(paths, tmp / "perface", an)
    secs = time.perf_counter() - t
    ours = len(paths) / secs
    tot = rep.totals()
    py = os.environ.get("DEFACE_PYTHON", "/tmp/defacevenv/bin/python")
    deface = None
    if Path(py).exists():
        out = subprocess.run([py, str(REPO / "benchmarks" / "deface_runner.py"), *map(str, paths), "--out",
                              str(tmp / "deface")], capture_output=True, text=True, check=True)
        deface = json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]
    dtxt = f"{deface:.2f}" if deface else "not installed"
    steps = "decode, detect, embed, select, swap, identity and attribute checks, write, report"
    body = f"""{len(paths)} CelebA photos upscaled to 640 px, one labelled face each (CenterFace found
{tot['faces_found']} faces: {tot['faces_swapped']} swapped, {tot['faces_fallen_back']} hidden by the fail-closed blur).

| tool | what it does per image | images / s |
|---|---|---|
| `perface anonymize` (swap) | {steps} | **{ours:.2f}** |
| deface 1.5.0 (blur) | decode, CenterFace detection, elliptical blur, write | {dtxt} |

Ratio deface / PerFace: {f'{deface / ours:.1f}x' if deface else 'n/a'}. Target for PerFace: >= 2 images/s.
{'Met.' if ours >= 2 else 'Not met.'}"""
    write_fragment("anonymize_speed", "Anonymization speed vs deface (issue 5)", body)


if __name__ == "__main__":
    main()
