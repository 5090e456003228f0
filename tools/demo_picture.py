"""Redraw docs/images/demo_before_after.jpg: the bundled example photo (top) and `perface demo`'s output (bottom).

    perface demo && python tools/demo_picture.py perface-demo/group.jpg
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    after = Path(sys.argv[1] if len(sys.argv) > 1 else "perface-demo/group.jpg")
    before = Image.open(REPO / "src/perface/examples/group.jpg").convert("RGB")
    out = Image.open(after).convert("RGB").resize(before.size)
    sheet = Image.new("RGB", (before.width, 2 * before.height))
    sheet.paste(before, (0, 0))
    sheet.paste(out, (0, before.height))
    sheet.save(REPO / "docs/images/demo_before_after.jpg", quality=90)


if __name__ == "__main__":
    main()
