"""Generic triplet CSV: ``anchor,positive,negative[,weight]`` image paths, one triplet per row.

For bringing your own judgments: the header row is required, paths are relative to the CSV's
folder (absolute paths are kept), and an empty or absent weight means 1. Each row becomes a
:class:`Triplet` with ``reference`` = anchor, ``a`` = positive, ``b`` = negative and one vote for
``a``; its id is ``<csv stem>:<line number>``.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from pathlib import Path

from .errors import DatasetError, DatasetWarning, summarise
from .triplets import Triplet, TripletSet

__all__ = ["load_csv_triplets"]

_COLUMNS = ["anchor", "positive", "negative"]


def load_csv_triplets(
    csv_path: str | os.PathLike[str], *, check_images: bool = True, name: str | None = None
) -> TripletSet:
    """Load an ``anchor,positive,negative[,weight]`` CSV into a :class:`TripletSet`.

    With `check_images`, rows naming a missing or empty file are dropped with one warning.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [(i, r) for i, r in enumerate(csv.reader(f), start=1) if any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path}: not a readable UTF-8 CSV file ({e})") from e
    if not rows:
        raise DatasetError(f"{path}: file is empty")
    header = [h.strip().lower() for h in rows[0][1]]
    if header not in (_COLUMNS, [*_COLUMNS, "weight"]):
        raise DatasetError(
            f"{path}: bad header {','.join(header)!r}, expected 'anchor,positive,negative[,weight]'"
        )

    base = path.parent
    triplets: list[Triplet] = []
    missing: list[str] = []
    for line, row in rows[1:]:
        cells = [c.strip() for c in row]
        if len(cells) != len(header) or not all(cells[:3]):
            raise DatasetError(
                f"{path}, line {line}: expected {len(header)} columns with 3 paths, got {row!r}"
            )
        weight = 1.0
        if len(cells) == 4 and cells[3]:
            try:
                weight = float(cells[3])
            except ValueError:
                raise DatasetError(f"{path}, line {line}: weight {cells[3]!r} is not a number") from None
            if not (math.isfinite(weight) and weight >= 0):
                raise DatasetError(f"{path}, line {line}: weight must be finite and >= 0, got {cells[3]!r}")
        anchor, pos, neg = (base / c for c in cells[:3])
        tid = f"{path.stem}:{line}"
        if check_images and not all(p.is_file() and p.stat().st_size > 0 for p in (anchor, pos, neg)):
            missing.append(tid)
            continue
        triplets.append(Triplet(id=tid, reference=anchor, a=pos, b=neg, votes_a=1, votes_b=0, weight=weight))
    if missing:
        warnings.warn(
            f"{path}: dropped {len(missing)} of {len(rows) - 1} triplets with a missing or empty image: "
            f"{summarise(missing)}",
            DatasetWarning,
            stacklevel=2,
        )
    if not triplets:
        raise DatasetError(f"{path}: no usable triplets")
    return TripletSet(triplets, name or path.stem)
