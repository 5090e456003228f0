"""Face folders with gender and age labels, for evaluating similarity within attribute groups.

* UTKFace: the labels are in the file name ``<age>_<gender>_<race>_<date>.jpg.chip.jpg`` (gender 0
  male, 1 female; race 0-4). A few released names are malformed (e.g. the race is missing); they
  are skipped and counted in one warning. UTKFace has no identities.
* CelebA: ``<root>/labels.csv`` with ``image,identity`` and the 40 attributes as +1/-1 (``Male``,
  ``Young`` are used), images in ``<root>/images/``. CelebA has no numeric age.

``young`` is ``age < 40`` for UTKFace and CelebA's own ``Young`` label for CelebA.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import DatasetError, DatasetWarning, summarise

__all__ = ["YOUNG_AGE_LIMIT", "LabelledFace", "in_training_part", "load_celeba", "load_utkface", "parse_utkface_name",
           "split_labelled"]

#: UTKFace faces younger than this are "young".
YOUNG_AGE_LIMIT = 40

Gender = Literal["male", "female"]
_UTK_RE = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d+)(?:\.jpg\.chip)?\.jpg$")


@dataclass(frozen=True)
class LabelledFace:
    """One labelled face image."""

    path: Path
    gender: Gender
    age: int | None
    young: bool
    identity: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if self.gender not in ("male", "female"):
            raise ValueError(f"{self.path}: gender must be 'male' or 'female', got {self.gender!r}")


def parse_utkface_name(path: str | os.PathLike[str]) -> LabelledFace | None:
    """Parse a UTKFace file name; None if it does not follow ``age_gender_race_date.jpg[.chip.jpg]``."""
    path = Path(path)
    m = _UTK_RE.match(path.name)
    if not m:
        return None
    age = int(m.group(1))
    gender: Gender = "male" if m.group(2) == "0" else "female"
    return LabelledFace(path=path, gender=gender, age=age, young=age < YOUNG_AGE_LIMIT, identity=None)


def load_utkface(folder: str | os.PathLike[str]) -> list[LabelledFace]:
    """All UTKFace ``*.jpg`` under `folder` (recursively), sorted by path; malformed names are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: UTKFace folder not found")
    faces: list[LabelledFace] = []
    bad: list[str] = []
    for path in sorted(folder.rglob("*.jpg")):
        face = parse_utkface_name(path)
        if face is None:
            bad.append(path.name)
        else:
            faces.append(face)
    if bad:
        warnings.warn(
            f"UTKFace ({folder}): skipped {len(bad)} file(s) with a malformed name: {summarise(bad)}",
            DatasetWarning,
            stacklevel=2,
        )
    if not faces:
        raise DatasetError(f"{folder}: no UTKFace images named age_gender_race_date.jpg.chip.jpg")
    return faces


def load_celeba(root: str | os.PathLike[str]) -> list[LabelledFace]:
    """CelebA faces from ``<root>/labels.csv`` (``Male``/``Young`` as +1/-1), images in ``<root>/images``.

    Rows whose image file is missing are skipped with one warning.
    """
    root = Path(root)
    path = root / "labels.csv"
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    if not rows:
        raise DatasetError(f"{path}: file is empty")
    header = [h.strip() for h in rows[0]]
    required = ("image", "identity", "Male", "Young")
    if missing := [c for c in required if c not in header]:
        raise DatasetError(f"{path}: header lacks column(s) {', '.join(missing)}")
    ii, iid, im, iy = (header.index(c) for c in required)
    faces: list[LabelledFace] = []
    absent: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DatasetError(f"{path}, line {line}: expected {len(header)} columns, got {len(row)}")
        flags = {}
        for col, i in (("Male", im), ("Young", iy)):
            value = row[i].strip()
            if value not in ("1", "-1", "+1"):
                raise DatasetError(f"{path}, line {line}: {col} must be +1 or -1, got {value!r}")
            flags[col] = value != "-1"
        image = root / "images" / row[ii].strip()
        if not image.is_file():
            absent.append(row[ii].strip())
            continue
        identity = row[iid].strip() or None
        gender: Gender = "male" if flags["Male"] else "female"
        faces.append(
            LabelledFace(path=image, gender=gender, age=None, young=flags["Young"], identity=identity)
        )
    if absent:
        warnings.warn(
            f"CelebA ({root}): skipped {len(absent)} row(s) whose image is missing: {summarise(absent)}",
            DatasetWarning,
            stacklevel=2,
        )
    if not faces:
        raise DatasetError(f"{path}: no rows with an existing image under {root / 'images'}")
    return faces


def in_training_part(face: LabelledFace, train_fraction: float) -> bool:
    """Whether a labelled face falls in the training part of the fixed split: by person where the
    dataset has identities (CelebA), else by file name (UTKFace). A CRC32 of the key, so the split
    needs no seed, does not depend on which other files exist, and is the same on every machine."""
    key = face.identity if face.identity is not None else face.path.name
    return zlib.crc32(key.encode("utf-8")) % 1000 < round(1000 * train_fraction)


def split_labelled(faces: list[LabelledFace], train_fraction: float) -> tuple[list[LabelledFace], list[LabelledFace]]:
    """(training part, held-out part) of labelled faces; see :func:`in_training_part`."""
    train = [f for f in faces if in_training_part(f, train_fraction)]
    return train, [f for f in faces if not in_training_part(f, train_fraction)]
