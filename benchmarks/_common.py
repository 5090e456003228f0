"""Helpers shared by the benchmark scripts: machine description, shared-data location, fragment writing, timing
whole commands."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FRAGMENTS = REPO / "docs" / "benchmarks"


def machine() -> str:
    """One line: CPU model, cores, memory, Python, date."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{platform.machine()} {cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def timed_command(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system of the command and its children) of one command; a failed
    command stops the benchmark with the end of its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"command failed ({res.returncode}): {' '.join(cmd[:6])} ...\n{res.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def today() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def shared_data() -> Path:
    """../shared/data (or $PERFACE_SHARED_DATA); exits with a message when absent."""
    env = os.environ.get("PERFACE_SHARED_DATA")
    d = Path(env) if env else REPO.parent / "shared" / "data"
    if not d.is_dir():
        raise SystemExit(f"benchmark needs the shared data folder, not found at {d}")
    return d


KEPT = "<!-- kept when the script rewrites this page: notes written by hand below -->"


def write_fragment(name: str, title: str, body: str, machine_line: str | None = None,
                   measured: str | None = None) -> Path:
    """Write docs/benchmarks/<name>.md with a heading, the machine and the date (this one's unless given: a run
    on another machine); returns the path. Whatever follows the :data:`KEPT` line of the page it replaces (notes
    written by hand, history) is kept."""
    FRAGMENTS.mkdir(parents=True, exist_ok=True)
    p = FRAGMENTS / f"{name}.md"
    old = p.read_text() if p.is_file() else ""
    kept = old[old.index(KEPT):].strip() if KEPT in old else ""
    tail = f"\n{kept}\n" if kept else ""
    where = machine_line or machine()
    p.write_text(f"## {title}\n\nMeasured {measured or today()} on {where}.\n\n{body.strip()}\n{tail}")
    print(p.read_text())
    return p


def celeba_at_640(n: int, start: int = 0) -> tuple[list[Path], Path]:
    """CelebA photos ``start..start+n`` upscaled to 640 px (longer side), saved as JPEG in a temp folder."""
    import csv
    import tempfile

    import cv2
    from PIL import Image

    from perface.face.io import read_image

    root = shared_data() / "celeba"
    rows = list(csv.DictReader((root / "labels.csv").read_text().splitlines()))[start : start + n]
    tmp = Path(tempfile.mkdtemp())
    paths = []
    for r in rows:
        im = read_image(root / "images" / r["image"])
        s = 640 / max(im.shape[:2])
        im = cv2.resize(im, (round(im.shape[1] * s), round(im.shape[0] * s)), interpolation=cv2.INTER_CUBIC)
        p = tmp / (Path(r["image"]).stem + ".jpg")
        Image.fromarray(im).save(p, quality=90)
        paths.append(p)
    return paths, tmp


def celeba_reid_setup():
    """CelebA probes and re-ID gallery as in `perface evaluate-anonymization` (seed 0), with the gallery's features.

    Returns ``(root, probes, detect_config, (gallery_ids, gallery_dlib, gallery_lbph))``.
    """
    from perface.evaluation.anonymity import _gallery_features, split_probes
    from perface.face.detect import REFERENCE_DETECT

    root = shared_data() / "celeba"
    probes, gallery = split_probes(root)
    det = REFERENCE_DETECT  # the evaluation's own detector
    return root, probes, det, _gallery_features(root, gallery, det, progress=False)
