"""The face networks' identity embeddings on labelled photos: the recognizer baselines of Sec. 4.5 (issue 18).

PerFace should group faces by gender and age at least as well as the identity embedding of the best recognizer the
project has, so ``perface evaluate`` scores each network's embedding by the same rule. Every image's largest face
is found with the feature bank's detector (every method sees the same face), cropped as that network crops it, and
embedded; the vectors are cached per image set and network beside the feature banks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from perface.face.detect import REFERENCE_DETECT, DetectConfig, detect
from perface.face.io import InputError, atomic_write, read_image
from perface.face.recognizers import NETWORKS, get_recognizer
from perface.metric.features import fingerprint

#: The networks scored besides dlib, whose identity descriptor the feature bank already holds.
BASELINE_RECOGNIZERS: tuple[str, ...] = tuple(NETWORKS)


_SHORT = {"mobilefacenet": "MobileFaceNet", "faceres": "FaceRes", "mobileface": "MobileFace", "facenet": "FaceNet"}


def recognizer_label(name: str) -> str:
    """The row name of a network's identity baseline, e.g. "FaceRes identity"."""
    return f"{_SHORT.get(name, name)} identity"


def recognizer_embeddings(
    paths: Sequence[str | os.PathLike[str]],
    names: Sequence[str],
    cache_dir: str | os.PathLike[str] | None = None,
    detect_config: DetectConfig | None = None,
    progress: bool = True,
    chunk: int = 256,
) -> dict[str, dict[str, np.ndarray]]:
    """Per network, each image's unit identity embedding of its largest face (images without a face are left out)."""
    paths = [str(p) for p in dict.fromkeys(str(p) for p in paths)]
    det = detect_config or REFERENCE_DETECT
    out: dict[str, dict[str, np.ndarray]] = {}
    todo = []
    caches = {name: _cache_file(cache_dir, paths, name, det) for name in names}
    for name, cache in caches.items():
        if cache is not None and cache.is_file():
            with np.load(cache) as z:
                out[name] = dict(zip(z["paths"].tolist(), z["vectors"], strict=True))
        else:
            todo.append(name)
    if not todo:
        return out
    recs = {n: get_recognizer(n) for n in todo}
    kept: list[str] = []
    vecs: dict[str, list[np.ndarray]] = {n: [] for n in todo}
    bar = tqdm(total=len(paths), desc="recognizer baselines", unit="img", disable=not progress)
    for s in range(0, len(paths), chunk):  # crops of a chunk at a time, so memory does not grow with the set
        crops: dict[str, list[np.ndarray]] = {n: [] for n in todo}
        for p in paths[s : s + chunk]:
            bar.update()
            try:
                image = read_image(p)
            except InputError:
                continue
            faces = detect(image, det)
            if not faces:
                continue
            face = max(faces, key=lambda f: f.width * f.height)
            kept.append(p)
            for n, rec in recs.items():
                crops[n].append(rec.crop(image, face))
        for n, rec in recs.items():
            if crops[n]:
                vecs[n].append(rec.embed_crops(crops[n]))
    bar.close()
    for n in todo:
        arr = np.concatenate(vecs[n]) if vecs[n] else np.zeros((0, 0), np.float32)
        out[n] = dict(zip(kept, arr, strict=True))
        cache = caches[n]
        if cache is not None:
            with atomic_write(cache, overwrite=True, suffix=".npz", what="recognizer cache") as tmp:
                np.savez(tmp, paths=np.array(kept, dtype=str), vectors=arr)
    return out


def _cache_file(cache_dir, paths: list[str], name: str, det: DetectConfig) -> Path | None:
    if cache_dir is None:
        return None
    from dataclasses import asdict

    key = fingerprint(paths, {"recognizer": name, "detect": asdict(det), "v": 1})
    return Path(cache_dir) / f"recognizer-{name}-{key}.npz"
