"""The consulted recognizers' features of a gallery's donors, and their skin lightness, stored beside the gallery
(``<gallery>.recognizers.npz``).

Why: the anonymizer pre-screens every donor it tries with each consulted recognizer. Computed lazily, a donor's
features cost one network run per recognizer the first time each process meets that donor: on 15 CelebA photos
at the defaults 9% of the CPU time, in every worker. Stored once (``perface gallery features``, and at the end
of ``perface gallery build``), they are read in milliseconds. A stored set is used only when it holds every donor
of the gallery and recomputing three of them (first, middle, last) gives the same features: a changed network,
crop, preprocessing or gallery makes the file ignored (features computed as before), never wrong.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from perface.anonymize.gallery import FEATURES_SUFFIX

if TYPE_CHECKING:
    from perface.anonymize.gallery import Gallery
    from perface.face.recognizers import Recognizer

SKIN = "skin_lightness"  # the donors' skin lightness (step 3's skin window), stored in the same file
P_MALE = "faceres_p_male"  # FaceRes's gender head on each donor's crop, P(male) (step 2's gender-clear donors)
TOLERANCE = 1e-5  # largest difference between a stored and a recomputed feature (ONNX Runtime builds differ ~1e-7)


def sidecar_path(gallery_path: str | os.PathLike[str]) -> Path:
    """Where a gallery's stored donor features live: beside it, ``<gallery>.recognizers.npz``."""
    return Path(f"{os.fspath(gallery_path)}{FEATURES_SUFFIX}")


def donor_features(recognizer: Recognizer, crop: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
    """One donor's features for a recognizer, from its stored crop and 68 landmarks (the face box is their extent)."""
    from perface.face.detect import Face, five_from_68

    x1, y1 = landmarks68.min(0)
    x2, y2 = landmarks68.max(0)
    face = Face(box=(float(x1), float(y1), float(x2), float(y2)), score=1.0, landmarks=five_from_68(landmarks68))
    return recognizer.embed(crop, [face])[0]


def donor_p_male(crop: np.ndarray, landmarks68: np.ndarray) -> float:
    """FaceRes's gender head on a donor's stored crop (the face box is its landmarks' extent): P(male)."""
    from perface.face.attribute_networks import FaceResPredictor

    x1, y1 = landmarks68.min(0)
    x2, y2 = landmarks68.max(0)
    a = FaceResPredictor.shared().predict([crop], [(float(x1), float(y1), float(x2), float(y2))])[0]
    return float(a.gender_confidence if a.gender == "male" else 1 - a.gender_confidence)


def _features_of(gallery: Gallery, recognizer: Recognizer, donor_id: str) -> np.ndarray:
    d = gallery.get(donor_id)
    return donor_features(recognizer, d.crop_rgb(), d.landmarks)


def write(gallery: Gallery, recognizers: Sequence[Recognizer],
          on_progress: Callable[[int, int], None] | None = None) -> Path:
    """Compute every donor's skin lightness and features for each recognizer (one face at a time, as the anonymizer
    does; each crop read once) and store them atomically beside the gallery; returns the file's path."""
    from perface.anonymize.swap import skin_lightness
    from perface.face.io import write_bytes_atomic

    ids = sorted(gallery.ids())
    skins: list[float] = []
    p_male: list[float] = []
    rows: dict[str, list[np.ndarray]] = {rec.name: [] for rec in recognizers}
    total, done = len(ids) * len(recognizers), 0
    for donor_id in ids:
        d = gallery.get(donor_id)
        crop = d.crop_rgb()
        skin = skin_lightness(crop, d.landmarks)
        skins.append(np.nan if skin is None else skin)
        p_male.append(donor_p_male(crop, d.landmarks))
        for rec in recognizers:
            rows[rec.name].append(donor_features(rec, crop, d.landmarks))
            done += 1
            if on_progress:
                on_progress(done, total)
    arrays: dict[str, np.ndarray] = {"ids": np.array(ids), SKIN: np.array(skins, np.float64),
                                     P_MALE: np.array(p_male, np.float64)}
    for name, feats in rows.items():
        arrays[name] = np.stack(feats).astype(np.float32) if feats else np.zeros((0, 0), np.float32)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = sidecar_path(gallery.path)
    write_bytes_atomic(path, buf.getvalue(), overwrite=True, what="donor features")
    return path


def _stored(gallery: Gallery, key: str) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """One stored array of the gallery's file, by donor id, as ``(values, None)``; ``(None, None)`` when there is
    no file or it lacks ``key``; ``(None, why)`` when it cannot be read or does not hold exactly the gallery's
    donors."""
    path = sidecar_path(gallery.path)
    if not path.is_file():
        return None, None
    try:
        with np.load(path, allow_pickle=False) as data:
            if key not in data.files:
                return None, None
            ids = [str(i) for i in data["ids"]]
            values = np.asarray(data[key])
    except (OSError, ValueError, KeyError) as exc:
        return None, f"{path}: stored donor features not used ({exc})"
    if len(values) != len(ids) or sorted(ids) != sorted(gallery.ids()):
        return None, (f"{path}: stored donor features do not match the gallery's donors; computing them instead "
                      "(rewrite with `perface gallery features`)")
    return dict(zip(ids, values, strict=True)), None


def _spot_checked(ids: Sequence[str]) -> set[str]:
    """The donors recomputed before a stored set is used: the first, middle and last."""
    return {ids[0], ids[len(ids) // 2], ids[-1]} if ids else set()


def load(gallery: Gallery, recognizer: Recognizer) -> dict[str, np.ndarray]:
    """The stored features of every donor for ``recognizer``, by donor id; empty when there is no file, it lacks
    that recognizer or a donor, or its spot check fails (then with a warning saying why)."""
    values, why = _stored(gallery, recognizer.name)
    if values is None:
        if why:
            warnings.warn(why, stacklevel=2)
        return {}
    stored = {i: np.asarray(v, np.float32) for i, v in values.items()}
    for donor_id in _spot_checked(sorted(stored)):
        diff = float(np.abs(_features_of(gallery, recognizer, donor_id) - stored[donor_id]).max())
        if not diff <= TOLERANCE:
            warnings.warn(f"{sidecar_path(gallery.path)}: stored {recognizer.name} features differ from recomputed "
                          f"ones ({diff:.1e}); computing them instead (rewrite with `perface gallery features`)",
                          stacklevel=2)
            return {}
    return stored


def load_skin(gallery: Gallery) -> dict[str, float | None]:
    """The stored skin lightness of every donor, by donor id (None where no skin shows); empty when there is no
    file, it lacks them or a donor, or three of them (first, middle, last) differ from recomputed ones."""
    from perface.anonymize.swap import skin_lightness

    values, _ = _stored(gallery, SKIN)
    if values is None:
        return {}
    stored = {i: (None if np.isnan(v) else float(v)) for i, v in values.items()}
    for donor_id in _spot_checked(sorted(stored)):
        d = gallery.get(donor_id)
        if skin_lightness(d.crop_rgb(), d.landmarks) != stored[donor_id]:
            warnings.warn(f"{sidecar_path(gallery.path)}: stored skin lightness differs from recomputed; computing "
                          "it instead", stacklevel=2)
            return {}
    return stored


def load_p_male(gallery: Gallery) -> dict[str, float]:
    """The stored P(male) of FaceRes's gender head for every donor, by donor id; empty when there is no file, it
    lacks them or a donor, or three of them (first, middle, last) differ from recomputed ones by more than 1e-4."""
    values, _ = _stored(gallery, P_MALE)
    if values is None:
        return {}
    stored = {i: float(v) for i, v in values.items()}
    for donor_id in _spot_checked(sorted(stored)):
        d = gallery.get(donor_id)
        if not abs(donor_p_male(d.crop_rgb(), d.landmarks) - stored[donor_id]) <= 1e-4:
            warnings.warn(f"{sidecar_path(gallery.path)}: stored gender readings differ from recomputed; computing "
                          "them instead (rewrite with `perface gallery features`)", stacklevel=2)
            return {}
    return stored
