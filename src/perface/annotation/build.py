"""Triplets the paper's way: a target face with three distinct sources swapped onto it (A, B and the
reference C, all 224 x 224), plus catch trials whose answer is known.

Sources are grouped in threes (same gender inside a group); each target is crossed with source groups
of its gender (and, with ``cross_gender_share``, some of the other), as SimCelebA crossed 80 targets with
80 source triplets. Every image shown is a swap, so hair and contour (the target's) cannot decide.
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from perface.face.io import InputError, PerFaceError

from .db import TripletRow, transaction
from .project import Project

__all__ = ["BuildConfig", "BuildReport", "FaceRecord", "build_project", "create_and_build", "plan_catch",
           "plan_triplets", "read_gender_labels"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class BuildConfig:
    """``per_target``: source groups per target (None: every group of the target's gender).
    ``cross_gender_share``: share of a target's groups drawn from the other gender. ``catch_share``:
    catch trials per real triplet. ``crop_scale``: crop side over the detected face box side."""

    per_target: int | None = None
    cross_gender_share: float = 0.0
    catch_share: float = 0.1
    size: int = 224
    crop_scale: float = 1.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.per_target is not None and self.per_target < 1:
            raise PerFaceError(f"per-target must be >= 1, got {self.per_target}")
        if not 0 <= self.cross_gender_share <= 1:
            raise PerFaceError(f"cross-gender share must be in [0, 1], got {self.cross_gender_share}")
        if not 0 <= self.catch_share < 1:
            raise PerFaceError(f"catch share must be in [0, 1), got {self.catch_share}")
        if not 64 <= self.size <= 1024:
            raise PerFaceError(f"size must be 64..1024, got {self.size}")


@dataclass
class FaceRecord:
    """A usable face of an input folder: name (path relative to the folder), gender, landmarks."""

    name: str
    path: Path
    gender: str
    box: tuple[float, float, float, float] = (0, 0, 0, 0)
    lm68: np.ndarray | None = field(default=None, repr=False)
    image: np.ndarray | None = field(default=None, repr=False)


@dataclass
class BuildReport:
    """What :func:`build_project` made and what it skipped (with reasons)."""

    n_targets: int = 0
    n_sources: int = 0
    n_real: int = 0
    n_catch: int = 0
    skipped: list[str] = field(default_factory=list)


def read_gender_labels(path: str | os.PathLike[str]) -> dict[str, str]:
    """``file,gender`` CSV (gender male/female or m/f) into ``{file stem or name: 'male'|'female'}``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "labels file not found")
    out: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    for line, row in enumerate(rows, start=2):
        name, g = (row.get("file") or "").strip(), (row.get("gender") or "").strip().lower()
        if not name or g not in ("male", "female", "m", "f"):
            raise InputError(path, f"line {line}: need columns file,gender with gender male/female")
        gender = "male" if g in ("male", "m") else "female"
        out[name] = out[Path(name).stem] = gender
    return out


def plan_triplets(targets: Sequence[tuple[str, str]], sources: Sequence[tuple[str, str]],
                  cfg: BuildConfig) -> list[tuple[str, tuple[str, str, str]]]:
    """``(target, (src_c, src_a, src_b))`` for every triplet to render, from ``(name, gender)`` pairs.

    Sources of one gender are shuffled into disjoint groups of three; each target gets ``per_target``
    groups (all of its gender when None), a ``cross_gender_share`` of them from the other gender. The
    role of each source in a group (reference, A or B) rotates with the target.
    """
    rng = random.Random(cfg.seed)
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for gender in ("female", "male"):
        names = sorted(n for n, g in sources if g == gender)
        rng.shuffle(names)
        groups[gender] = [tuple(names[i:i + 3]) for i in range(0, len(names) - 2, 3)]  # type: ignore[misc]
    plan: list[tuple[str, tuple[str, str, str]]] = []
    for t_index, (target, gender) in enumerate(sorted(targets)):
        other = "male" if gender == "female" else "female"
        same, cross = list(groups.get(gender, [])), list(groups.get(other, []))
        want = cfg.per_target if cfg.per_target is not None else len(same)
        n_cross = min(len(cross), int(round(want * cfg.cross_gender_share)))
        n_same = min(len(same), want - n_cross)
        rng.shuffle(same)
        rng.shuffle(cross)
        for group in same[:n_same] + cross[:n_cross]:
            k = t_index % 3
            plan.append((target, group[k:] + group[:k]))
    return plan


def plan_catch(n_real: int, share: float, seed: int = 0) -> list[tuple[int, str, str]]:
    """Catch trials as ``(real triplet index, side holding the copy of C, other image 'a'|'b')``."""
    n = int(round(n_real * share))
    if share > 0 and n_real:
        n = max(1, n)
    rng = random.Random(seed + 1)
    picks = rng.sample(range(n_real), min(n, n_real))
    return [(i, rng.choice("ab"), rng.choice("ab")) for i in picks]


def _analyse(folder: Path, labels: dict[str, str] | None, log: Log) -> tuple[list[FaceRecord], list[str]]:
    """Every image of `folder` with one usable face: largest face, 68 landmarks, gender."""
    from perface.face.attributes import predict_attributes
    from perface.face.detect import detect
    from perface.face.io import iter_image_paths, read_image
    from perface.face.landmarks import predict_landmarks68

    if not folder.is_dir():
        raise InputError(folder, "folder not found")
    paths = iter_image_paths([str(folder)])
    if not paths:
        raise InputError(folder, "no images found")
    out, skipped = [], []
    for path in paths:
        name = path.relative_to(folder).with_suffix("").as_posix()
        try:
            image = read_image(path)
        except InputError as exc:
            skipped.append(f"{path}: {exc.reason}")
            continue
        faces = detect(image)
        if not faces:
            skipped.append(f"{path}: no face found")
            continue
        face = max(faces, key=lambda f: f.width * f.height)
        box = tuple(int(round(v)) for v in face.box)
        gender = None
        if labels is not None:
            gender = labels.get(name) or labels.get(path.name) or labels.get(path.stem)
            if gender is None:
                skipped.append(f"{path}: no gender label")
                continue
        else:
            gender = predict_attributes([image], [box])[0].gender
        out.append(FaceRecord(name, path, gender, face.box, predict_landmarks68(image, face.box), image))
    log(f"{folder}: {len(out)} usable faces of {len(paths)} images")
    return out, skipped


def _crop(image: np.ndarray, box: tuple[float, float, float, float], cfg: BuildConfig) -> np.ndarray:
    """A square crop around the target face (hair included), resized to ``cfg.size``."""
    from perface.face.align import region_crop

    x1, y1, x2, y2 = box
    side = cfg.crop_scale * max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - 0.08 * side
    return region_crop(image, cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2, cfg.size)


def _save(image: np.ndarray, path: Path) -> None:
    """A JPEG without metadata (quality 95), written atomically."""
    tmp = path.with_suffix(".tmp")
    Image.fromarray(image).save(tmp, "JPEG", quality=95)
    os.replace(tmp, path)


def build_project(project: Project, targets_dir: str | os.PathLike[str], sources_dir: str | os.PathLike[str],
                  cfg: BuildConfig | None = None, labels: str | os.PathLike[str] | None = None,
                  log: Log = lambda m: None) -> BuildReport:
    """Render every planned triplet with the project's swapper into ``images/`` and store it."""
    from perface.anonymize.swap import get_swapper

    cfg = cfg or BuildConfig()
    with transaction(project.engine) as s:
        if s.query(TripletRow).count():
            raise PerFaceError(f"{project.root}: the project already has triplets")
    gender_labels = read_gender_labels(labels) if labels else None
    report = BuildReport()
    targets, skipped_t = _analyse(Path(targets_dir), gender_labels, log)
    sources, skipped_s = _analyse(Path(sources_dir), gender_labels, log)
    report.skipped += skipped_t + skipped_s
    report.n_targets, report.n_sources = len(targets), len(sources)
    by_t = {f.name: f for f in targets}
    by_s = {f.name: f for f in sources}
    plan = plan_triplets([(f.name, f.gender) for f in targets], [(f.name, f.gender) for f in sources], cfg)
    if not plan:
        raise PerFaceError(f"{sources_dir}: too few usable sources for one triplet of three per gender "
                           f"({len(sources)} usable)")
    swapper = get_swapper("classic")
    rows: list[TripletRow] = []
    crops: list[dict[str, np.ndarray]] = []
    for target, group in plan:
        t = by_t[target]
        images: dict[str, np.ndarray] = {}
        for side, src in zip("cab", group, strict=True):
            d = by_s[src]
            res = swapper.swap(t.image, t.lm68, d.image, d.lm68)
            if not res.ok:
                report.skipped.append(f"{target} x {src}: swap failed ({res.reason})")
                break
            images[side] = _crop(res.image, t.box, cfg)
        if len(images) < 3:
            continue
        code = f"t{len(rows):04d}"
        for side, img in images.items():
            _save(img, project.images / f"{code}_{side}.jpg")
        rows.append(TripletRow(code=code, kind="real", target=target, source_c=group[0], source_a=group[1],
                               source_b=group[2]))
        crops.append(images)
        if len(rows) % 20 == 0:
            log(f"rendered {len(rows)} of {len(plan)} triplets")
    for n, (i, same_side, other) in enumerate(plan_catch(len(rows), cfg.catch_share, cfg.seed)):
        real, code = rows[i], f"c{n:04d}"
        pics = {"c": crops[i]["c"], same_side: crops[i]["c"][:, ::-1].copy(),
                "ab".replace(same_side, ""): crops[i][other]}
        for side, img in pics.items():
            _save(img, project.images / f"{code}_{side}.jpg")
        src_other = real.source_a if other == "a" else real.source_b
        srcs = {same_side: real.source_c, "ab".replace(same_side, ""): src_other}
        rows.append(TripletRow(code=code, kind="catch", target=real.target, source_c=real.source_c,
                               source_a=srcs["a"], source_b=srcs["b"], catch_answer=same_side))
    with transaction(project.engine) as s:
        s.add_all(rows)
    report.n_real = sum(r.kind == "real" for r in rows)
    report.n_catch = len(rows) - report.n_real
    return report


def create_and_build(root: str | os.PathLike[str], targets_dir: str | os.PathLike[str],
                     sources_dir: str | os.PathLike[str], settings=None, cfg: BuildConfig | None = None,
                     labels: str | os.PathLike[str] | None = None, db: str | None = None,
                     log: Log = lambda m: None) -> tuple[Project, str, BuildReport]:
    """Create the project folder and build its triplets; a failed build leaves no folder behind."""
    import shutil

    from .project import create_project

    root = Path(root)
    existed = root.exists()
    project, admin = create_project(root, settings, db=db)
    try:
        report = build_project(project, targets_dir, sources_dir, cfg, labels=labels, log=log)
    except BaseException:
        project.engine.dispose()
        if not existed:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return project, admin, report
