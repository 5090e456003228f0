"""Helpers shared by the backbone benchmarks: machine description, bundled chips, fragment writing."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRAGMENT = ROOT / "docs" / "benchmarks" / "backbones.md"
CHIPS_DIR = ROOT / "tests" / "data" / "chips"

try:  # run from a checkout without installing the package
    import perface  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(ROOT / "src"))


def machine_info() -> str:
    """One line: date, core count, architecture and CPU model (and GPU when CUDA is up)."""
    date = subprocess.run(["date"], capture_output=True, text=True).stdout.strip()
    cpu = "unknown CPU"
    try:
        info = Path("/proc/cpuinfo").read_text()
        keys = ("model name", "cpu family", "model", "cpu MHz")
        field = {k: re.search(rf"^{k}\s*:\s*(.+)$", info, re.M) for k in keys}
        if field["model name"]:
            cpu = field["model name"].group(1).strip()
        if field["cpu family"] and field["model"]:
            cpu += f" (family {field['cpu family'].group(1)}, model {field['model'].group(1)}"
            cpu += f", {float(field['cpu MHz'].group(1)) / 1000:.1f} GHz)" if field["cpu MHz"] else ")"
    except OSError:
        pass
    import os

    import torch

    line = f"{date}; {os.cpu_count()}-core {platform.machine()}, {cpu}; torch {torch.__version__}"
    if torch.cuda.is_available():
        line += f"; GPU {torch.cuda.get_device_name(0)}"
    return line


def load_average() -> str:
    """1-minute load average, to show how busy the (shared) machine was."""
    import os

    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:  # pragma: no cover
        return "n/a"


def bundled_chips(n: int) -> np.ndarray:
    """``n`` 150x150 RGB chips, cycling through the ones bundled in tests/data/chips."""
    from PIL import Image

    files = sorted(CHIPS_DIR.glob("*.jpg"))
    base = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    return base[np.arange(n) % len(base)]


def write_section(key: str, markdown: str) -> Path:
    """Replace (or append) the section ``key`` of docs/benchmarks/backbones.md, delimited by HTML comments."""
    FRAGMENT.parent.mkdir(parents=True, exist_ok=True)
    text = FRAGMENT.read_text() if FRAGMENT.exists() else "## Backbones (PyTorch port of dlib's ResNet)\n"
    start, end = f"<!-- {key} -->", f"<!-- /{key} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    FRAGMENT.write_text(text)
    return FRAGMENT
