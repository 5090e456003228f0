"""Turning folders of donor face images into gallery records (what ``perface gallery build`` does).

Per donor: the largest face is detected, checked (frontal enough, large enough), cropped with a
margin, and described by its PerFace embedding, dlib identity embedding, 68 landmarks (in crop
coordinates, for the swapper) and gender/age (from labels when given, else predicted offline). A donor
whose gender is unclear (a predicted gender below ``min_gender_confidence``) is skipped: a swap carries the
donor's gender cues into the output, so an unclear donor would make "gender kept" a coin toss. So is a blurry
one (``min_sharpness``): the swap pastes the donor's texture as it is, and a soft donor gives a smeared face.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from perface.anonymize.gallery import Donor, Gallery
from perface.face.detect import REFERENCE_DETECT, detect
from perface.face.identity import get_embedder
from perface.face.io import InputError, UnreadableError, read_image


@dataclass(frozen=True)
class DonorBuildConfig:
    """Which donor faces are accepted and how they are stored."""

    max_yaw: float = 12.0  # on swap.estimate_yaw's scale; donors should be near-frontal
    min_face_px: float = 64.0
    per_group: int | None = None  # keep at most this many donors per gender x age group (seeded sample)
    crop_margin: float = 0.9  # stored crop = face box grown by this share on every side
    max_crop_side: int = 256
    licence: str | None = None
    min_gender_confidence: float = 0.9  # skip donors whose *predicted* gender is less certain (labels are trusted)
    # Skip donors whose face_sharpness is below this. OMI's 256 px faces score 86-485 (5th-95th percentile of 150),
    # the AVFS StyleGAN3 faces, stored as blurry 160 px images, 4-11 (of 60); 0 turns the check off.
    min_sharpness: float = 30.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.5 <= self.min_gender_confidence <= 1.0:
            raise ValueError("min_gender_confidence must be a probability in [0.5, 1] (the predicted label's "
                             f"probability is never below 0.5), got {self.min_gender_confidence}")
        if self.min_sharpness < 0:
            raise ValueError(f"min_sharpness must be >= 0, got {self.min_sharpness}")


@dataclass
class BuildReport:
    """Counts of a gallery build."""

    path: Path
    added: int
    per_group: dict[str, int]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # of skipped: unreadable, or failed to process


def read_labels(path: str | os.PathLike[str]) -> dict[str, tuple[str | None, float | None]]:
    """``image,gender,age`` CSV (gender male/female, age in years; either may be empty) keyed by file name."""
    p = Path(path)
    out: dict[str, tuple[str | None, float | None]] = {}
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "image" not in reader.fieldnames:
                raise InputError(p, "labels CSV needs an 'image' column (and 'gender' and/or 'age')")
            for i, row in enumerate(reader, start=2):
                g = (row.get("gender") or "").strip().lower() or None
                if g not in (None, "male", "female"):
                    raise InputError(p, f"line {i}: gender must be male or female, got {g!r}")
                a = (row.get("age") or "").strip()
                try:
                    age = float(a) if a else None
                except ValueError:
                    raise InputError(p, f"line {i}: age must be a number, got {a!r}") from None
                out[Path(row["image"]).name] = (g, age)
    except OSError as exc:
        raise InputError(p, f"cannot read labels ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise InputError(p, f"labels CSV is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except csv.Error as exc:
        raise InputError(p, f"labels CSV cannot be parsed ({exc})") from None
    return out


def omi_labels(root: str | os.PathLike[str], clear_margin: float = 15.0) -> dict[str, tuple[str | None, float | None]]:
    """Donor labels from One Million Impressions mean ratings (``<root>/attribute_means.csv``), keyed ``<id>.jpg``.

    Gender where the raters are clear (the 0-100 ``gender`` rating, high = male-looking, at least
    ``clear_margin`` from 50), else None (left to the predictor and its confidence rule); age = the mean
    ``age`` rating read as years (on OMI it tracks the offline age predictor: r = 0.92, 1.8 years apart on
    average). Human ratings of how a face looks are the better label for donors than a predictor's guess.
    """
    from perface.datasets import DatasetError, attribute_table

    try:
        table = attribute_table(root)
    except DatasetError as exc:
        raise InputError(Path(root), str(exc)) from None
    for col in ("gender", "age"):
        if col not in table.attributes:
            raise InputError(Path(root), f"attribute_means.csv has no {col!r} column")
    out: dict[str, tuple[str | None, float | None]] = {}
    for fid, g, a in zip(table.face_ids, table.column("gender"), table.column("age"), strict=True):
        gender = "male" if g >= 50 + clear_margin else "female" if g <= 50 - clear_margin else None
        out[f"{fid}.jpg"] = (gender, None if np.isnan(a) else float(a))
    return out


def combine_labels(*sources: dict[str, tuple[str | None, float | None]]
                   ) -> dict[str, tuple[str | None, float | None]]:
    """Donor labels from several sources, keyed by file name; a later source wins wherever it gives a value."""
    out: dict[str, tuple[str | None, float | None]] = {}
    for source in sources:
        for name, (g, a) in source.items():
            og, oa = out.get(name, (None, None))
            out[name] = (g or og, oa if a is None else a)
    return out


def face_sharpness(image: np.ndarray, lm68: np.ndarray, eye_distance: float = 60.0) -> float:
    """Variance of the Laplacian inside the face (68-point hull), at a scale where the eyes are 60 px apart.

    Why the fixed scale: the same face upsampled looks softer and downsampled sharper, so raw Laplacian
    variance would rank donors by resolution rather than by focus."""
    lm = np.asarray(lm68, dtype=np.float64)
    iod = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))
    if not np.isfinite(iod) or iod < 2:
        return 0.0
    s = eye_distance / iod
    gray = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    x0, y0 = np.maximum(np.floor(lm.min(0)).astype(int) - 2, 0)
    x1, y1 = np.ceil(lm.max(0)).astype(int) + 3
    gray = gray[y0:y1, x0:x1]
    if gray.size == 0:
        return 0.0
    gray = cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    mask = np.zeros(gray.shape, np.uint8)
    cv2.fillConvexPoly(mask, np.round(cv2.convexHull(((lm - [x0, y0]) * s).astype(np.float32))).astype(np.int32), 1)
    mask = cv2.erode(mask, np.ones((5, 5), np.uint8)).astype(bool)  # keep the face outline's edge out
    lap = cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F)
    return float(lap[mask].var()) if mask.sum() >= 20 else 0.0


def _crop(image: np.ndarray, box, lm68: np.ndarray, margin: float, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    cx1, cy1 = int(max(0, x1 - margin * bw)), int(max(0, y1 - margin * bh))
    cx2, cy2 = int(min(w, x2 + margin * bw)), int(min(h, y2 + margin * bh))
    crop = image[cy1:cy2, cx1:cx2]
    lm = lm68 - np.array([cx1, cy1], np.float32)
    s = min(1.0, max_side / max(crop.shape[:2]))
    if s < 1.0:
        crop = cv2.resize(crop, (round(crop.shape[1] * s), round(crop.shape[0] * s)), interpolation=cv2.INTER_AREA)
        lm = lm * s
    return np.ascontiguousarray(crop), lm.astype(np.float32)


def prepare_donor(path: Path, model, config: DonorBuildConfig,
                  label: tuple[str | None, float | None] | None = None) -> Donor:
    """One gallery record from an image file; raises :class:`InputError` when the face is unsuitable."""
    from perface.anonymize.swap import estimate_yaw
    from perface.face.attributes import age_group_of, predict_attributes
    from perface.face.landmarks import predict_landmarks68

    image = read_image(path)
    faces = detect(image, REFERENCE_DETECT)  # as the shipped gallery was built: rebuilds match it
    if not faces:
        raise InputError(path, "no face found")
    face = max(faces, key=lambda f: f.width * f.height)
    if face.size < config.min_face_px:
        raise InputError(path, f"face too small ({face.size:.0f} px)")
    lm68 = predict_landmarks68(image, face.box)
    yaw = float(estimate_yaw(lm68))
    if abs(yaw) > config.max_yaw:
        raise InputError(path, f"face not frontal enough (yaw {yaw:.0f})")
    if config.min_sharpness > 0:
        sharp = face_sharpness(image, lm68)
        if sharp < config.min_sharpness:
            raise InputError(path, f"face too blurry (sharpness {sharp:.0f} < {config.min_sharpness:g})")
    crop, lm_crop = _crop(image, face.box, lm68, config.crop_margin, config.max_crop_side)
    perceptual = model.embed([(image, face)])[0]
    identity = get_embedder().embed_faces(image, [face])[0]
    gender, age = label or (None, None)
    source = "label"
    if gender is None or age is None:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        pred = predict_attributes([image], [(x1, y1, x2, y2)])[0]
        if gender is None and pred.gender_confidence < config.min_gender_confidence:
            raise InputError(path, f"gender unclear (predicted {pred.gender} with probability "
                                   f"{pred.gender_confidence:.2f} < {config.min_gender_confidence:g})")
        # the source says where the *gender* came from: a labelled age does not make a predicted gender a label
        source = "predicted" if gender is None else "label"
        gender = gender or pred.gender
        age = pred.age if age is None else age
    return Donor(id=path.stem, source=str(path.name), gender=gender, age=float(age), age_group=age_group_of(age),
                 attribute_source=source, perceptual=perceptual, identity=identity,
                 crop=Donor.encode_crop(crop, "jpeg", quality=92), landmarks=lm_crop, licence=config.licence)


def build_gallery(
    paths: Sequence[Path],
    out: str | os.PathLike[str],
    model,
    config: DonorBuildConfig | None = None,
    labels: dict[str, tuple[str | None, float | None]] | None = None,
    overwrite: bool = False,
    on_progress: Callable[[str, str | None], None] | None = None,
) -> BuildReport:
    """Build a gallery file from donor images (atomic: nothing is left behind on failure)."""
    cfg = config or DonorBuildConfig()
    donors: list[Donor] = []
    skipped: list[tuple[str, str]] = []
    failed: list[tuple[str, str]] = []
    prefix_count: dict[str, int] = {}
    for p in paths:
        try:
            d = prepare_donor(Path(p), model, cfg, (labels or {}).get(Path(p).name))
            # Unique ids across folders with the same file names.
            k = prefix_count.get(d.id, 0)
            prefix_count[d.id] = k + 1
            if k:
                d.id = f"{d.id}~{k}"
            donors.append(d)
            if on_progress:
                on_progress(str(p), None)
        except Exception as exc:  # noqa: BLE001 - one bad file is listed, the others still become donors
            reason = exc.reason if isinstance(exc, InputError) else (
                f"could not be processed ({type(exc).__name__}: {' '.join(str(exc).split())})")
            skipped.append((str(p), reason))
            if not isinstance(exc, InputError) or isinstance(exc, UnreadableError):
                failed.append((str(p), reason))
            if on_progress:
                on_progress(str(p), reason)
    if cfg.per_group:
        rng = np.random.default_rng(cfg.seed)
        kept: list[Donor] = []
        for g in ("male", "female"):
            for a in ("young", "older"):
                members = [d for d in donors if d.gender == g and d.age_group == a]
                idx = sorted(rng.permutation(len(members))[: cfg.per_group].tolist())
                kept.extend(members[i] for i in idx)
        donors = kept
    if not donors:
        raise InputError(None, "no usable donor face in the inputs")
    with Gallery.building(out, model.model_id, int(donors[0].perceptual.size), overwrite=overwrite) as gallery:
        gallery.add(donors)
    counts: dict[str, int] = {}
    for d in donors:
        key = f"{d.age_group}_{d.gender}"
        counts[key] = counts.get(key, 0) + 1
    return BuildReport(Path(out), len(donors), counts, skipped, failed)
