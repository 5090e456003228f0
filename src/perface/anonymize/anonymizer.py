"""Anonymize faces in images by similarity-controlled face swapping, failing closed.

Every detected face is replaced by a donor from the same attribute group that the PerFace metric
judges perceptually far from the person (:mod:`perface.anonymize.select`), swapped in offline
(:mod:`perface.anonymize.swap`). After swapping, the output face is checked with the identity recognizer; if it
still matches the original, the next donor is tried. A face that cannot be swapped safely (too
small, extreme pose, no landmarks, failed check, any error) is blurred, pixelated or masked instead:
it is never left as it was. Outputs carry no metadata, are written atomically and never replace
inputs; a JSON privacy report lists every face and what was done to it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from perface.anonymize.select import DonorSelector, SelectConfig
from perface.face.detect import DetectConfig, Face, detect
from perface.face.identity import SAME_PERSON_COSINE, get_embedder
from perface.face.io import InputError, PerFaceError, ReadConfig, atomic_write, read_image, write_image

Method = Literal["swap", "blur", "pixelate", "mask"]
Obscure = Literal["blur", "pixelate", "mask"]
REPORT_NAME = "perface-report.json"


@dataclass(frozen=True)
class AnonymizeConfig:
    """How faces are anonymized. ``fallback`` hides any face that cannot be swapped safely."""

    method: Method = "swap"
    fallback: Obscure = "blur"
    select: SelectConfig = field(default_factory=SelectConfig)
    detect: DetectConfig = field(default_factory=lambda: DetectConfig(threshold=0.4))
    identity_threshold: float = SAME_PERSON_COSINE  # identity cosine at/above which a swap is rejected
    # Skip donors whose own identity embedding is this close to the face's (cosine): a swap keeps the head and
    # jaw line, so a donor a recognizer already finds similar gives a likely re-identifiable result. None: off.
    donor_identity_max: float | None = 0.88
    # Try donors whose skin lightness (median LAB L, 0-255) is within this of the face's first; the others follow,
    # closest first. The colour transfer bridges moderate gaps, but a dark donor on a pale face (or the reverse)
    # comes out grey-eyed and washed out. None: off.
    max_skin_gap: float | None = 50.0
    keep_gender: bool = True  # prefer a donor whose swap keeps the face's predicted gender (naturalness)
    check_gender_above: float = 0.6  # ...when the original's predicted gender is at least this confident
    keep_age_group: bool = True  # also prefer one that keeps the predicted age group (young < 40 / older)
    min_face_px: float = 16.0  # faces whose box is smaller than this are obscured, not swapped
    mask_scale: float = 1.3  # obscured region = box scaled by this
    swapper_options: dict[str, Any] = field(default_factory=dict)  # ClassicSwapper settings, e.g. max_yaw_deg
    draw_scores: bool = False  # debug overlay: boxes, scores and the method used
    overwrite: bool = False
    suffix: str = ""  # appended to output file stems

    def __post_init__(self) -> None:
        for name, value, allowed in (("method", self.method, Method.__args__),
                                     ("fallback", self.fallback, Obscure.__args__)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.donor_identity_max is not None and not -1.0 <= self.donor_identity_max <= 1.0:
            raise ValueError(f"donor_identity_max must be a cosine in [-1, 1] or None, got {self.donor_identity_max}")
        if self.max_skin_gap is not None and not 0 <= self.max_skin_gap <= 255:
            raise ValueError(f"max_skin_gap must be within 0..255 (LAB lightness) or None, got {self.max_skin_gap}")
        if self.swapper_options:  # checked here, so a bad setting fails before any model or gallery loads
            from perface.anonymize.swap import ClassicSwapper

            try:
                ClassicSwapper(**self.swapper_options)
            except TypeError as exc:
                raise ValueError(f"swapper_options: {exc}") from None


@dataclass
class FaceRecord:
    """What happened to one face (the per-face part of the privacy report)."""

    box: list[float]
    score: float
    method: str
    reason: str | None = None
    group: str | None = None
    donor_id: str | None = None
    tries: int = 0
    perceptual_similarity_donor: float | None = None  # original face vs chosen donor (before)
    perceptual_similarity_after: float | None = None  # original face vs output face
    identity_similarity_donor: float | None = None
    identity_similarity_after: float | None = None
    gender_kept: bool | None = None  # predicted gender of the output equals the original's (None: not checked)
    age_group_kept: bool | None = None  # likewise for the predicted age group
    skin_lightness_gap: float | None = None  # donor's skin lightness minus the face's (LAB L, 0-255)


@dataclass
class ImageRecord:
    """The report entry for one input file."""

    input: str
    output: str | None
    faces: list[FaceRecord]
    error: str | None = None
    seconds: float = 0.0


def _round(v):
    return None if v is None else round(float(v), 4)


def default_gallery_path() -> Path:
    """The bundled donor gallery (synthetic faces; see NOTICE.md for licences)."""
    return Path(str(resources.files("perface").joinpath("data", "default_gallery.sqlite")))


def obscure(image: np.ndarray, box: Sequence[float], method: Obscure, scale: float = 1.3) -> np.ndarray:
    """Hide a face region (an ellipse around the scaled box) by heavy blur, pixelation or a flat mask."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    rx, ry = max(2.0, (x2 - x1) * scale / 2), max(2.0, (y2 - y1) * scale / 2)
    bx1, by1 = max(0, int(cx - rx)), max(0, int(cy - ry))
    bx2, by2 = min(w, int(np.ceil(cx + rx))), min(h, int(np.ceil(cy + ry)))
    if bx2 <= bx1 or by2 <= by1:
        return image
    out = image.copy()
    roi = out[by1:by2, bx1:bx2]
    if method == "blur":
        k = max(3, int(max(roi.shape[:2]) // 3) | 1)
        hidden = cv2.GaussianBlur(cv2.GaussianBlur(roi, (k, k), 0), (k, k), 0)
        hidden = cv2.blur(hidden, (max(1, k // 2), max(1, k // 2)))
    elif method == "pixelate":
        cells = 6
        small = cv2.resize(roi, (cells, max(1, int(cells * roi.shape[0] / max(1, roi.shape[1])))),
                           interpolation=cv2.INTER_AREA)
        hidden = cv2.resize(small, (roi.shape[1], roi.shape[0]), interpolation=cv2.INTER_NEAREST)
    elif method == "mask":
        hidden = np.zeros_like(roi)
    else:
        raise ValueError(f"unknown obscuring method {method!r}")
    mask = np.zeros(roi.shape[:2], np.uint8)
    cv2.ellipse(mask, (int(cx - bx1), int(cy - by1)), (int(rx), int(ry)), 0, 0, 360, 255, -1)
    roi[mask > 0] = hidden[mask > 0]
    return out


def draw_overlay(image: np.ndarray, faces: Sequence[FaceRecord]) -> np.ndarray:
    """Boxes, detector scores and the method used, drawn on the (already anonymized) output."""
    out = image.copy()
    colours = {"swap": (40, 200, 40), "blur": (230, 160, 0), "pixelate": (230, 160, 0), "mask": (230, 160, 0)}
    for f in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in f.box)
        c = colours.get(f.method, (255, 0, 0))
        cv2.rectangle(out, (x1, y1), (x2, y2), c, 2)
        cv2.putText(out, f"{f.score:.2f} {f.method}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, c, 1,
                    cv2.LINE_AA)
    return out


class Anonymizer:
    """Holds the models, the gallery and the swapper; anonymizes images one by one."""

    def __init__(self, config: AnonymizeConfig | None = None, gallery: str | os.PathLike[str] | None = None,
                 model: str | os.PathLike[str] = "default") -> None:
        self.config = config or AnonymizeConfig()
        self.identity = get_embedder()
        self.model = None
        self.gallery = None
        self.selector = None
        if self.config.method == "swap":
            from perface.anonymize.gallery import Gallery
            from perface.anonymize.swap import get_swapper
            from perface.metric.model import load

            self.model = load(model)
            gpath = Path(gallery) if gallery else default_gallery_path()
            if not gpath.is_file():
                raise InputError(gpath, "donor gallery not found (build one with `perface gallery build`)")
            self.gallery = Gallery.open(gpath, expected_model_id=self.model.model_id, readonly=True)
            self.selector = DonorSelector(self.gallery, self.config.select)
            # The swapper's own floor (inter-ocular / eye-to-mouth px) sits just below ours, so a face we
            # pass on is swapped rather than refused; anything smaller is blurred (fail closed).
            self.swapper = get_swapper("classic", **{"min_face_px": 0.5 * self.config.min_face_px,
                                                     **self.config.swapper_options})
        self._donor_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._skin_cache: dict[str, float | None] = {}
        self._identity_cache: dict[str, np.ndarray] = {}  # donor id -> unit identity embedding

    def _donor(self, donor_id: str) -> tuple[np.ndarray, np.ndarray]:
        if donor_id not in self._donor_cache:
            d = self.gallery.get(donor_id)
            self._donor_cache[donor_id] = (d.crop_rgb(), d.landmarks)
        return self._donor_cache[donor_id]

    def donor_skin_lightness(self, donor_id: str) -> float | None:
        """A donor's skin lightness, cached; its crop is read once and not kept."""
        if donor_id not in self._skin_cache:
            from perface.anonymize.swap import skin_lightness

            if donor_id in self._donor_cache:
                crop, lm = self._donor_cache[donor_id]
            else:
                d = self.gallery.get(donor_id)
                crop, lm = d.crop_rgb(), d.landmarks
            self._skin_cache[donor_id] = skin_lightness(crop, lm)
        return self._skin_cache[donor_id]

    def _by_skin(self, candidates: Sequence[str], similarities: Sequence[float], skin: float | None
                 ) -> Iterator[tuple[str, float, float | None]]:
        """Candidates in the selector's order, those within ``max_skin_gap`` first, the rest after, closest first.

        Lazy: a donor's skin is read only when the loop gets that far, so a few tries cost a few reads."""
        gap_max = self.config.max_skin_gap
        deferred: list[tuple[float, int, str, float, float]] = []
        for i, (donor_id, psim) in enumerate(zip(candidates, similarities, strict=True)):
            d_skin = self.donor_skin_lightness(donor_id) if skin is not None and gap_max is not None else None
            gap = None if d_skin is None or skin is None else d_skin - skin
            if gap is not None and abs(gap) > gap_max:  # type: ignore[operator]
                deferred.append((abs(gap), i, donor_id, psim, gap))
                continue
            yield donor_id, psim, gap
        for _, _, donor_id, psim, gap in sorted(deferred):
            yield donor_id, psim, gap

    def _identity_at(self, image: np.ndarray, face: Face) -> np.ndarray:
        return self.identity.embed_faces(image, [face])[0]

    def _donor_identity_similarity(self, ident: np.ndarray, donor_id: str) -> float:
        """Identity cosine between a face's embedding and a donor's stored one (read without its crop);
        the highest one when ``ident`` holds several faces' embeddings, one per row."""
        if donor_id not in self._identity_cache:  # pre-screens and the report ask again for the same donors
            d = self.gallery.identity_of(donor_id)
            self._identity_cache[donor_id] = d / np.linalg.norm(d)
        return float(np.max(ident @ self._identity_cache[donor_id]))

    def anonymize_array(self, image: np.ndarray, seed: int | None = None) -> tuple[np.ndarray, list[FaceRecord]]:
        """Anonymize every face of an RGB image; returns the new image and one record per face."""
        cfg = self.config
        faces = detect(image, cfg.detect)
        out = image.copy()
        records: list[FaceRecord] = []
        used: set[str] = set()
        rng = np.random.default_rng(cfg.select.seed if seed is None else seed)
        # Everyone in the photo, so that no one's face is pasted onto someone else (a gallery may hold them).
        people = self._identities(image, faces) if cfg.method == "swap" else []
        for k, face in enumerate(faces):
            rec = FaceRecord(box=[round(float(v), 1) for v in face.box], score=round(float(face.score), 4),
                             method=cfg.fallback)
            try:
                if cfg.method != "swap":
                    rec.method, rec.reason = cfg.method, "requested"
                    out = obscure(out, face.box, cfg.method, cfg.mask_scale)
                else:
                    others = [p for j, p in enumerate(people) if j != k and p is not None]
                    out = self._swap_face(out, image, face, rec, used, rng, people[k] if people else None, others)
            except Exception as exc:  # noqa: BLE001 - fail closed: any error hides the face
                rec.method, rec.reason = cfg.fallback, f"error: {type(exc).__name__}: {exc}"
                out = obscure(out, face.box, cfg.fallback, cfg.mask_scale)
            records.append(rec)
        if cfg.draw_scores:
            out = draw_overlay(out, records)
        return out, records

    def _identities(self, image: np.ndarray, faces: Sequence[Face]) -> list[np.ndarray | None]:
        """dlib identity embedding of every detected face (None where it cannot be computed)."""
        out: list[np.ndarray | None] = []
        for face in faces:
            try:
                out.append(self._identity_at(image, face))
            except Exception:  # noqa: BLE001 - that face fails closed later; the others still get checked
                out.append(None)
        return out

    def _swap_face(self, out: np.ndarray, original: np.ndarray, face: Face, rec: FaceRecord, used: set[str],
                   rng: np.random.Generator, ident0: np.ndarray | None = None,
                   others: Sequence[np.ndarray] = ()) -> np.ndarray:
        """Swap one face (trying donors in order, with the identity and attribute checks) or hide it.

        ``ident0``: the face's identity embedding; ``others``: those of the other faces in the photo. A donor
        whose identity matches any of them (cosine >= ``identity_threshold``) is never used."""
        from perface.face.attributes import predict_attributes
        from perface.face.landmarks import predict_landmarks68

        cfg = self.config

        def fall_back(reason: str) -> np.ndarray:
            rec.method, rec.reason = cfg.fallback, reason
            return obscure(out, face.box, cfg.fallback, cfg.mask_scale)

        if face.size < cfg.min_face_px:
            return fall_back(f"face too small ({face.size:.0f} px < {cfg.min_face_px:.0f})")
        lm68 = predict_landmarks68(original, face.box)
        query = self.model.embed([(original, face)])[0]
        if ident0 is None:
            ident0 = self._identity_at(original, face)
        others_m = np.stack(others) if len(others) else None
        box = tuple(int(round(v)) for v in face.box)
        predicted, age = None, None
        if cfg.select.group_by != "metric" or cfg.keep_gender or cfg.keep_age_group or cfg.select.max_age_gap:
            a = predict_attributes([original], [box])[0]
            predicted, age = (a.gender, a.gender_confidence, a.age_group), a.age
        check_gender = cfg.keep_gender and predicted is not None and predicted[1] >= cfg.check_gender_above
        check_age = cfg.keep_age_group and predicted is not None
        sel = self.selector.select(query, exclude_ids=used, rng=rng, age=age,
                                   predicted=predicted if cfg.select.group_by != "metric" else None)
        rec.group = sel.group
        if not sel.candidates:
            return fall_back("no donor available in the chosen group")
        last_reason = "no donor passed the identity check"
        # Among identity-safe swaps, the first that keeps the checked attributes wins; otherwise the one that
        # keeps the most (gender counts double), the earliest on ties. Attributes are about naturalness: a
        # swap that changes them is still anonymous, so it is used rather than blurring the face.
        best: tuple[int, np.ndarray, str, float, float, bool | None, bool | None, float | None] | None = None
        full = 2 * check_gender + check_age
        tries = 0
        skin = None
        if cfg.max_skin_gap is not None:
            from perface.anonymize.swap import skin_lightness

            skin = skin_lightness(original, lm68)
        for donor_id, psim, gap in self._by_skin(sel.candidates, sel.similarities, skin):
            if tries >= cfg.select.max_tries:
                break
            # Cheap pre-screens; skipped donors do not count as tries.
            if (cfg.donor_identity_max is not None
                    and self._donor_identity_similarity(ident0, donor_id) >= cfg.donor_identity_max):
                if tries == 0:
                    last_reason = f"donors too close in identity (cosine >= {cfg.donor_identity_max:g})"
                continue
            if others_m is not None and self._donor_identity_similarity(others_m, donor_id) >= cfg.identity_threshold:
                if tries == 0:
                    last_reason = "the donors left are people in this photo"
                continue
            tries += 1
            rec.tries = tries
            donor_img, donor_lm = self._donor(donor_id)
            res = self.swapper.swap(out, lm68, donor_img, donor_lm)
            if not res.ok:
                last_reason = f"swap refused: {res.reason}"
                if res.reason and "donor" not in res.reason:
                    break  # the target itself cannot be swapped (size, pose, outside): no donor will do
                continue
            ident_after = self._identity_at(res.image, face)
            id_sim = float(ident0 @ ident_after)
            if id_sim >= cfg.identity_threshold:
                last_reason = f"identity still matched after swap (cosine {id_sim:.3f})"
                continue
            g_kept = a_kept = None
            if check_gender or check_age:
                after_attr = predict_attributes([res.image], [box])[0]
                g_kept = after_attr.gender == predicted[0] if check_gender else None
                a_kept = after_attr.age_group == predicted[2] if check_age else None
            score = 2 * bool(g_kept) + bool(a_kept)
            if best is None or score > best[0]:
                best = (score, res.image, donor_id, psim, id_sim, g_kept, a_kept, gap)
            if score == full:
                break
        if best is not None:
            _, image, donor_id, psim, id_sim, g_kept, a_kept, gap = best
            rec.method, rec.reason, rec.donor_id = "swap", None, donor_id
            rec.skin_lightness_gap = None if gap is None else round(float(gap), 1)
            rec.gender_kept, rec.age_group_kept = g_kept, a_kept
            rec.perceptual_similarity_donor = _round(psim)
            rec.identity_similarity_donor = _round(self._donor_identity_similarity(ident0, donor_id))
            rec.identity_similarity_after = _round(id_sim)
            after = self.model.embed([(image, face)])[0]
            rec.perceptual_similarity_after = _round(float(query @ after))
            used.add(donor_id)
            return image
        return fall_back(last_reason)


@dataclass
class RunReport:
    """The privacy report of one ``perface anonymize`` run."""

    images: list[ImageRecord]
    config: dict
    gallery: str | None
    model: str | None
    started: str
    seconds: float = 0.0

    def totals(self) -> dict[str, int]:
        faces = [f for im in self.images for f in im.faces]
        return {
            "images": len(self.images),
            "images_failed": sum(im.error is not None for im in self.images),
            "faces_found": len(faces),
            "faces_swapped": sum(f.method == "swap" for f in faces),
            "faces_fallen_back": sum(f.method != "swap" and f.reason != "requested" for f in faces),
            "faces_obscured_on_request": sum(f.reason == "requested" for f in faces),
            "faces_left_unanonymized": 0,
        }

    def to_dict(self) -> dict:
        return {"perface_report": 1, "started": self.started, "seconds": round(self.seconds, 2),
                "model": self.model, "gallery": self.gallery, "config": self.config, "totals": self.totals(),
                "images": [asdict(im) for im in self.images]}

    def save(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        p = Path(path)
        with atomic_write(p, overwrite=overwrite, what="report") as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2))
        return p


def output_paths(inputs: Sequence[Path], outdir: Path, suffix: str = "") -> list[Path]:
    """One output path per input in ``outdir``, unique names, never equal to an input."""
    taken: set[str] = set()
    out = []
    resolved_inputs = {p.resolve() for p in inputs}
    for p in inputs:
        stem, ext = p.stem + suffix, p.suffix.lower() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp",
                                                                                ".bmp") else ".png"
        name, k = f"{stem}{ext}", 1
        while name in taken or (outdir / name).resolve() in resolved_inputs:
            k += 1
            name = f"{stem}-{k}{ext}"
        taken.add(name)
        out.append(outdir / name)
    return out


def anonymize_files(
    inputs: Sequence[Path],
    outdir: str | os.PathLike[str],
    anonymizer: Anonymizer,
    dry_run: bool = False,
    on_progress: Callable[[ImageRecord], None] | None = None,
    read_config: ReadConfig | None = None,
) -> RunReport:
    """Anonymize files into ``outdir`` (report included); unreadable files are listed, not fatal."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    out_dir = Path(outdir)
    targets = output_paths(list(inputs), out_dir, anonymizer.config.suffix)
    report_path = out_dir / REPORT_NAME
    if not dry_run:
        clashes = [t for t in targets if t.exists()]
        if report_path.exists():
            clashes.append(report_path)
        if clashes and not anonymizer.config.overwrite:
            raise InputError(clashes[0], f"output already exists ({len(clashes)} file(s) in {out_dir}); "
                                         "pass --overwrite or choose another -o folder")
    records = []
    for src, dst in zip(inputs, targets, strict=True):
        t = time.perf_counter()
        try:
            image = read_image(src, read_config)
            result, faces = anonymizer.anonymize_array(image)
            if not dry_run:
                write_image(dst, result, overwrite=anonymizer.config.overwrite)
            rec = ImageRecord(str(src), None if dry_run else str(dst), faces)
        except InputError as exc:
            rec = ImageRecord(str(src), None, [], error=exc.reason)
        rec.seconds = round(time.perf_counter() - t, 3)
        records.append(rec)
        if on_progress:
            on_progress(rec)
    cfg = asdict(replace(anonymizer.config))
    gal = str(anonymizer.gallery.path) if anonymizer.gallery is not None else None
    model = anonymizer.model.model_id if anonymizer.model is not None else None
    report = RunReport(records, cfg, gal, model, started, time.perf_counter() - t0)
    if not dry_run:
        report.save(report_path, overwrite=anonymizer.config.overwrite)
    return report


def check_outdir(inputs: Sequence[Path], outdir: Path) -> None:
    """Refuse an output folder that is an input file."""
    if outdir.exists() and not outdir.is_dir():
        raise InputError(outdir, "output path exists and is not a folder")
    if any(p.resolve() == outdir.resolve() for p in inputs):
        raise PerFaceError(f"{outdir}: output folder is one of the inputs")
