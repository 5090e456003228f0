"""SimCelebA (PerFace, Kumagai et al., ICIP 2025): face-swap triplets with three human answers each.

Released layout (as described by the authors' README and a third-party reproduction):

* ``simCelebA_triplet.tar.gz`` with ``t####_a.jpg``, ``t####_b.jpg``, ``t####_c.jpg`` (224 px;
  ``c`` is the reference, ``a``/``b`` the two candidates). Where the images sit inside the archive
  is not documented, so members are matched by file name and extracted flat.
* ``triplet_answers.csv``: ``tripletId,ans1,ans2,ans3`` with values ``a``/``b`` and CRLF line
  endings, 6,400 rows ``t0000``..``t6399``.

The released archive has a known defect: ``t4963_c.jpg`` is 0 bytes. Such triplets are dropped
with one :class:`~perface.datasets.errors.DatasetWarning` that lists every dropped triplet.

Identities are not part of the release. For the paper's identity splits, pass a CSV
``tripletId,target,source_a,source_b,source_c`` (one target and the source of each image); a file
``triplet_identities.csv`` beside the answers (as ``perface annotate export`` writes) is read by default.
"""

from __future__ import annotations

import csv
import os
import re
import tarfile
import warnings
from pathlib import Path
from typing import Literal

from PIL import Image

from .errors import DatasetError, DatasetWarning, summarise
from .triplets import Triplet, TripletSet

__all__ = [
    "SIMCELEBA_ANSWERS",
    "SIMCELEBA_ARCHIVE",
    "SIMCELEBA_IDENTITIES",
    "extract_simceleba",
    "load_simceleba",
    "read_identity_map",
    "read_simceleba_answers",
]

SIMCELEBA_ANSWERS = "triplet_answers.csv"
SIMCELEBA_ARCHIVE = "simCelebA_triplet.tar.gz"
SIMCELEBA_IDENTITIES = "triplet_identities.csv"
_IMAGE_RE = re.compile(r"^t\d+_[abc]\.jpg$")
_ANS_RE = re.compile(r"^ans\d+$")
_IDENTITY_HEADER = ["tripletId", "target", "source_a", "source_b", "source_c"]

Verify = Literal["size", "header", "decode"]


def _read_rows(path: Path) -> list[list[str]]:
    """Read a CSV file (any line ending, optional BOM) or raise DatasetError naming it."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path}: not a readable UTF-8 CSV file ({e})") from e
    if not rows:
        raise DatasetError(f"{path}: file is empty")
    return rows


def read_simceleba_answers(path: str | os.PathLike[str]) -> dict[str, tuple[str, ...]]:
    """Read ``triplet_answers.csv`` into ``{tripletId: ("a", "b", ...)}``, validating every cell.

    Empty answer cells are treated as a missing annotation; a row needs at least one answer.
    """
    path = Path(path)
    rows = _read_rows(path)
    header = [h.strip() for h in rows[0]]
    if len(header) < 2 or header[0] != "tripletId" or not all(_ANS_RE.match(h) for h in header[1:]):
        raise DatasetError(f"{path}: bad header {','.join(header)!r}, expected 'tripletId,ans1,ans2,ans3'")
    answers: dict[str, tuple[str, ...]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DatasetError(f"{path}, line {line}: expected {len(header)} columns, got {len(row)}")
        tid = row[0].strip()
        if not tid:
            raise DatasetError(f"{path}, line {line}: empty tripletId")
        if tid in answers:
            raise DatasetError(f"{path}, line {line}: duplicate tripletId {tid!r}")
        values = [cell.strip().lower() for cell in row[1:]]
        bad = [v for v in values if v not in ("a", "b", "")]
        if bad:
            raise DatasetError(f"{path}, line {line}: answer {bad[0]!r} for {tid} is not 'a' or 'b'")
        votes = tuple(v for v in values if v)
        if not votes:
            raise DatasetError(f"{path}, line {line}: triplet {tid} has no answer")
        answers[tid] = votes
    if not answers:
        raise DatasetError(f"{path}: header only, no triplets")
    return answers


def read_identity_map(path: str | os.PathLike[str]) -> dict[str, tuple[str, tuple[str, str, str]]]:
    """Read ``tripletId,target,source_a,source_b,source_c`` into ``{id: (target, (src_c, src_a, src_b))}``.

    The sources are returned in :class:`Triplet` image order ``(reference, a, b)``.
    """
    path = Path(path)
    rows = _read_rows(path)
    header = [h.strip() for h in rows[0]]
    if header != _IDENTITY_HEADER:
        raise DatasetError(
            f"{path}: bad header {','.join(header)!r}, expected {','.join(_IDENTITY_HEADER)!r}"
        )
    out: dict[str, tuple[str, tuple[str, str, str]]] = {}
    for line, row in enumerate(rows[1:], start=2):
        cells = [c.strip() for c in row]
        if len(cells) != 5 or not all(cells):
            raise DatasetError(f"{path}, line {line}: expected 5 non-empty columns, got {row!r}")
        tid, target, src_a, src_b, src_c = cells
        if tid in out:
            raise DatasetError(f"{path}, line {line}: duplicate tripletId {tid!r}")
        out[tid] = (target, (src_c, src_a, src_b))
    return out


def extract_simceleba(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract the triplet images (and any ``triplet_answers.csv``) of `archive` flat into `dest`.

    Only regular members named ``t####_{a,b,c}.jpg`` or ``triplet_answers.csv`` are written, under
    their base name, so the archive's inner folders do not matter and no member can escape `dest`.
    A marker file makes a second call with the same archive a no-op.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise DatasetError(f"{archive}: archive not found")
    st = archive.stat()
    stamp = f"{archive.name} {st.st_size} {st.st_mtime_ns}\n"
    marker = dest / ".perface-extracted"
    if marker.is_file() and marker.read_text() == stamp:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tf:
            for member in tf:
                base = Path(member.name).name
                if not member.isfile() or not (_IMAGE_RE.match(base) or base == SIMCELEBA_ANSWERS):
                    continue
                src = tf.extractfile(member)
                if src is None:
                    continue
                with src, (dest / base).open("wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DatasetError(f"{archive}: cannot extract ({e})") from e
    marker.write_text(stamp)
    return dest


def _default_cache(archive: Path) -> Path:
    base = os.environ.get("PERFACE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "perface")
    return Path(base) / "simceleba" / archive.name.removesuffix(".tar.gz")


def _find_image_dir(base: Path, max_depth: int = 3) -> Path | None:
    """The first folder at or below `base` (breadth first) holding ``t####_c.jpg`` files."""
    level = [base]
    for _ in range(max_depth + 1):
        nxt: list[Path] = []
        for d in level:
            if any(_IMAGE_RE.match(p.name) for p in d.glob("t*_*.jpg")):
                return d
            nxt.extend(sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")))
        level = nxt
    return None


def _image_problem(path: Path, verify: Verify) -> str | None:
    """Why `path` cannot be used, or None if it is fine."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    if size == 0:
        return "empty file"
    if verify == "size":
        return None
    try:
        with Image.open(path) as im:
            if verify == "decode":
                im.load()
    except Exception as e:  # PIL raises many types for corrupt files
        return f"unreadable ({type(e).__name__})"
    return None


def load_simceleba(
    root: str | os.PathLike[str],
    *,
    answers: str | os.PathLike[str] | None = None,
    identities: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    verify: Verify = "header",
    name: str = "SimCelebA",
) -> TripletSet:
    """Load SimCelebA as released into a :class:`TripletSet` (all triplets; use ``.d1()``/``.d2()``).

    `root` is a folder holding ``triplet_answers.csv`` and either the images (directly or in a
    sub-folder) or ``simCelebA_triplet.tar.gz``; it may also be the archive itself. An archive is
    extracted once into `cache_dir` (default ``$PERFACE_CACHE/simceleba/<name>`` or
    ``~/.cache/perface/...``). `answers` overrides the CSV location; `identities` is an optional
    ``tripletId,target,source_a,source_b,source_c`` CSV. `verify` sets the image check: ``"size"``
    (exists, not empty), ``"header"`` (PIL can open it) or ``"decode"`` (PIL can decode it).
    Triplets with a failing image are dropped with one warning.
    """
    if verify not in ("size", "header", "decode"):
        raise ValueError(f"verify must be 'size', 'header' or 'decode', got {verify!r}")
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: SimCelebA root not found")
    archive = root if root.is_file() else root / SIMCELEBA_ARCHIVE
    folder = root.parent if root.is_file() else root
    image_dir = None if root.is_file() else _find_image_dir(folder)
    if image_dir is None:
        if not archive.is_file():
            raise DatasetError(f"{folder}: no t####_{{a,b,c}}.jpg images and no {SIMCELEBA_ARCHIVE}")
        image_dir = extract_simceleba(archive, Path(cache_dir) if cache_dir else _default_cache(archive))
        if _find_image_dir(image_dir, max_depth=0) is None:
            raise DatasetError(f"{archive}: no t####_{{a,b,c}}.jpg images in the archive")
    if answers is not None:
        csv_path = Path(answers)
    else:
        candidates = [folder / SIMCELEBA_ANSWERS, image_dir / SIMCELEBA_ANSWERS]
        csv_path = next((p for p in candidates if p.is_file()), candidates[0])
    votes = read_simceleba_answers(csv_path)
    if identities is None and (csv_path.parent / SIMCELEBA_IDENTITIES).is_file():
        identities = csv_path.parent / SIMCELEBA_IDENTITIES
    ids = read_identity_map(identities) if identities is not None else None

    triplets: list[Triplet] = []
    dropped: list[str] = []
    unmapped: list[str] = []
    for tid, ans in votes.items():
        paths = {side: image_dir / f"{tid}_{side}.jpg" for side in "abc"}
        problems = [f"{p.name}: {why}" for p in paths.values() if (why := _image_problem(p, verify))]
        if problems:
            dropped.append(f"{tid} ({'; '.join(problems)})")
            continue
        target, sources = (None, None)
        if ids is not None:
            if tid in ids:
                target, sources = ids[tid]
            else:
                unmapped.append(tid)
        triplets.append(
            Triplet(
                id=tid,
                reference=paths["c"],
                a=paths["a"],
                b=paths["b"],
                votes_a=ans.count("a"),
                votes_b=ans.count("b"),
                target_id=target,
                source_ids=sources,
            )
        )
    if dropped:
        _warn(
            f"{image_dir}: dropped {len(dropped)} of {len(votes)} triplets with a missing, empty or "
            f"unreadable image: {summarise(dropped)}"
        )
    if unmapped:
        _warn(
            f"{identities}: {len(unmapped)} of {len(votes)} triplets have no row in the identity map "
            f"and get no target/source ids: {summarise(unmapped)}"
        )
    if not triplets:
        raise DatasetError(f"{image_dir}: none of the {len(votes)} triplets in {csv_path} has usable images")
    return TripletSet(triplets, name)


def _warn(message: str) -> None:
    warnings.warn(f"SimCelebA: {message}", DatasetWarning, stacklevel=3)
