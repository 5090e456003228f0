"""Cached model inputs and frozen backbone features, so training on CPU takes minutes.

For every image the face is detected once, its view chips are cut, and the frozen part of the
backbone is run on the chips and on their mirror images (flip augmentation). Results live in one
``.npz`` per (image set, model config) under a cache folder, keyed by file paths, sizes and content digests
(not times: a data folder copied anew, same files, keeps its cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from perface.face.detect import REFERENCE_DETECT, DetectConfig, detect
from perface.face.identity import get_embedder
from perface.face.io import InputError, atomic_write, read_image


@dataclass
class FeatureBank:
    """Per-image inputs for training: ``views[v][i, flip]`` chips and cached backbone outputs.

    ``pooled[i, flip]`` holds the pooled features of levels before ``start``; ``acts[v][i, flip]`` the
    activation fed to stage ``start`` (only when part of the backbone is fine-tuned).
    """

    paths: list[str]
    index: dict[str, int]
    pooled: np.ndarray  # (N, 2, n_views * pooled_dim) float32
    identity: np.ndarray  # (N, 128) unit dlib identity descriptors of view 0 (the dlib chip), no flip
    acts: list[np.ndarray] | None  # per view (N, 2, C, H, W) float32 or None when frozen
    start: int  # first backbone stage that is run at training time
    missing: list[tuple[str, str]]

    def __len__(self) -> int:
        return len(self.paths)


def fingerprint(paths: Sequence[str], extra: dict) -> str:
    """A cache key for results computed from these images' contents (sizes and digests, not times) and ``extra``."""
    h = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode())
    for p in paths:
        h.update(f"{p}|{_stamp(p)}\n".encode())
    return h.hexdigest()[:20]


def _largest_face_views(model, path: str, detect_config: DetectConfig) -> list[np.ndarray]:
    image = read_image(path)
    faces = detect(image, detect_config)
    if not faces:
        raise InputError(path, "no face found")
    face = max(faces, key=lambda f: f.width * f.height)
    return model.align(image, face)


@torch.inference_mode()
def build_feature_bank(
    model,
    paths: Sequence[str | os.PathLike[str]],
    cache_dir: str | os.PathLike[str] | None = None,
    detect_config: DetectConfig | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> FeatureBank:
    """Detect, align and run the frozen backbone part once for each image (and its mirror image)."""
    paths = [str(p) for p in dict.fromkeys(str(p) for p in paths)]
    cfg = model.config
    names = [n for n, _ in model.features.backbone.stages()]
    start = model.features.last + 1 if cfg.train_from is None else names.index(cfg.train_from)
    det = detect_config or REFERENCE_DETECT  # the shipped model was trained on features of its detections
    feature_key = _feature_key(cfg, start, det)
    key = fingerprint(paths, {"features": feature_key, "v": 6})
    cache_file = Path(cache_dir) / f"features-{key}.npz" if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        return _read_bank(cache_file, len(cfg.views), start)
    if cache_dir is not None:  # gather from banks cached for other image sets; extract only what none holds
        covered = _cached_sources(Path(cache_dir), paths, feature_key)
        if covered and len(covered) < len(paths):
            build_feature_bank(model, [p for p in paths if p not in covered], cache_dir, det, batch_size, progress)
            covered = _cached_sources(Path(cache_dir), paths, feature_key)
        if len(covered) == len(paths):
            return _gather(covered, paths, len(cfg.views), start)

    chips: list[list[np.ndarray]] = []
    kept, missing = [], []
    for p in tqdm(paths, desc="align faces", unit="img", disable=not progress):
        try:
            chips.append(_largest_face_views(model, p, det))
            kept.append(p)
        except InputError as exc:
            missing.append((p, exc.reason))
    if missing:
        warnings.warn(f"{len(missing)} image(s) without a usable face were dropped, e.g. {missing[0][0]}: "
                      f"{missing[0][1]}", stacklevel=2)
    bb = model.features.backbone
    model.eval()
    pooled, identity = [], []
    acts: list[list[np.ndarray]] = [[] for _ in cfg.views]
    for s in tqdm(range(0, len(kept), batch_size), desc="backbone features", unit="batch", disable=not progress):
        batch = chips[s : s + batch_size]
        per_flip = []
        for flip in (False, True):
            feats = []
            for v in range(len(cfg.views)):
                arr = np.stack([c[v] for c in batch])
                if flip:
                    arr = np.ascontiguousarray(arr[:, :, ::-1])
                x = bb.preprocess(arr)
                if v == 0 and not flip:
                    # dlib's own (pretrained) descriptor, even when the model fine-tunes its backbone copy:
                    # this is the identity baseline (chips of another backbone's size are resized to dlib's 150 px).
                    ident_chips = arr if arr.shape[1] == 150 else np.stack(
                        [cv2.resize(c, (150, 150), interpolation=cv2.INTER_LINEAR) for c in arr])
                    identity.append(get_embedder("torch").embed_chips(list(ident_chips)))
                pooled_v, act = _run_until(model, x, start)
                feats.append(pooled_v)
                if cfg.train_from is not None:
                    acts[v].append(act.numpy()[:, None])
            for v in range(len(cfg.second_paddings)):  # a second backbone: all frozen
                arr = np.stack([c[len(cfg.views) + v] for c in batch])
                if flip and cfg.second_flip:
                    arr = np.ascontiguousarray(arr[:, :, ::-1])
                feats.append(model.second(model.second.backbone.preprocess(arr)))
            per_flip.append(torch.cat(feats, dim=1).numpy() if feats[0].numel() else
                            np.zeros((len(batch), 0), np.float32))
        pooled.append(np.stack(per_flip, axis=1))
    pooled_arr = np.concatenate(pooled).astype(np.float32) if pooled else np.zeros((0, 2, 0), np.float32)
    acts_arr = None
    if cfg.train_from is not None:
        acts_arr = []
        for v in range(len(cfg.views)):
            chunks = acts[v]
            # chunks alternate (no flip, flip) per batch: pair them on axis 1
            acts_arr.append(np.concatenate(
                [np.concatenate([chunks[i], chunks[i + 1]], axis=1) for i in range(0, len(chunks), 2)]
            ).astype(np.float32))
    identity_arr = np.concatenate(identity).astype(np.float32) if identity else np.zeros((0, 128), np.float32)
    bank = FeatureBank(kept, {p: i for i, p in enumerate(kept)}, pooled_arr, identity_arr, acts_arr, start,
                       missing)
    if cache_file is not None:
        extra = {f"acts{v}": a for v, a in enumerate(acts_arr or [])}
        with atomic_write(cache_file, overwrite=True, suffix=".npz", what="feature cache") as tmp:
            np.savez(tmp, paths=np.array(kept), pooled=pooled_arr, identity=identity_arr,
                     missing=np.array(["\t".join(m) for m in missing] or [], dtype=str),
                     feature_key=np.array(feature_key), stamps=np.array([_stamp(p) for p in paths]),
                     requested=np.array(paths), **extra)
    return bank


def _feature_key(cfg, start: int, det: DetectConfig) -> str:
    """What the cached features depend on: the backbone part, views and levels, and the detector (not the head)."""
    part = {k: getattr(cfg, k) for k in ("backbone", "views", "feature_levels", "color_grid", "train_from")}
    if cfg.second_backbone is not None:  # only then: one-backbone models keep the keys of their cached features
        part.update(second_backbone=cfg.second_backbone, second_levels=cfg.second_levels)
        if cfg.second_views or not cfg.second_flip:
            part.update(second_views=cfg.second_views, second_flip=cfg.second_flip)
        if cfg.second_crop != "chip":
            part.update(second_crop=cfg.second_crop)
    return json.dumps({"model": part, "start": start, "detect": asdict(det)}, sort_keys=True, default=str)


_DIGESTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> digest: each file is read once a process


def _stamp(path: str) -> str:
    """An image's size and a digest of its bytes: what its cached features depend on. Times are left out, so a
    folder copied anew keeps its cache (reading 100 MB of images costs well under a second)."""
    try:
        st = os.stat(path)
        key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
        if key not in _DIGESTS:
            with open(path, "rb") as f:
                _DIGESTS[key] = hashlib.file_digest(f, "blake2b").hexdigest()[:20]
        return f"{st.st_size}|{_DIGESTS[key]}"
    except OSError:
        return "missing"


def _read_bank(cache_file: Path, n_views: int, start: int, only: Sequence[str] | None = None) -> FeatureBank:
    """A cached bank, or the rows of ``only`` (requested paths) from a larger one."""
    z = np.load(cache_file, allow_pickle=False)
    kept = z["paths"].tolist()
    missing = [tuple(m.split("\t", 1)) for m in z["missing"].tolist()]
    rows = np.arange(len(kept))
    if only is not None:  # matched by absolute path; the bank names images as requested
        where = {os.path.abspath(p): i for i, p in enumerate(kept)}
        got = [p for p in only if os.path.abspath(p) in where]
        rows = np.array([where[os.path.abspath(p)] for p in got], dtype=np.int64)
        kept = got
        wanted = {os.path.abspath(p): p for p in only}
        missing = [(wanted[os.path.abspath(m[0])], m[1]) for m in missing if os.path.abspath(m[0]) in wanted]
    acts = [z[f"acts{v}"][rows] for v in range(n_views)] if "acts0" in z.files else None
    return FeatureBank(kept, {p: i for i, p in enumerate(kept)}, z["pooled"][rows], z["identity"][rows], acts,
                       start, missing)


def _cached_sources(cache_dir: Path, paths: Sequence[str], feature_key: str) -> dict[str, Path]:
    """For each requested (unchanged) image, a cached bank of the same features that holds it."""
    if not cache_dir.is_dir():
        return {}
    want = {p: _stamp(p) for p in paths}
    source: dict[str, Path] = {}
    for f in sorted(cache_dir.glob("features-*.npz")):
        try:
            with np.load(f, allow_pickle=False) as z:
                if "feature_key" not in z.files or str(z["feature_key"]) != feature_key:
                    continue
                have = {os.path.abspath(r): s for r, s in zip(z["requested"].tolist(), z["stamps"].tolist(),
                                                               strict=True)}
        except (OSError, ValueError, KeyError):
            continue
        for p, s in want.items():
            if p not in source and have.get(os.path.abspath(p)) == s:
                source[p] = f
        if len(source) == len(want):
            break
    return source


def _gather(source: dict[str, Path], paths: Sequence[str], n_views: int, start: int) -> FeatureBank:
    """One bank of the requested images, in the requested order, read from the cached banks that hold them.

    One extraction per image folder then serves every training run and evaluation drawn from those folders."""
    parts = [_read_bank(f, n_views, start, only=[p for p in paths if source[p] == f])
             for f in dict.fromkeys(source[p] for p in paths)]
    kept = [p for b in parts for p in b.paths]
    order = {p: i for i, p in enumerate(kept)}
    rows = np.array([order[p] for p in paths if p in order], dtype=np.int64)
    kept = [kept[i] for i in rows]
    acts = ([np.concatenate([b.acts[v] for b in parts])[rows] for v in range(n_views)]
            if parts[0].acts is not None else None)
    return FeatureBank(kept, {p: i for i, p in enumerate(kept)}, np.concatenate([b.pooled for b in parts])[rows],
                       np.concatenate([b.identity for b in parts])[rows], acts, start,
                       [m for b in parts for m in b.missing])


def _run_until(model, x: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features of the chosen levels among stages < start, and the activation entering ``start``."""
    pooled, act = model.features.run(x, 0, start)
    return (torch.cat(pooled, dim=1) if pooled else torch.zeros(x.shape[0], 0)), act


def bank_features(model, bank: FeatureBank, rows: np.ndarray, flips: np.ndarray) -> torch.Tensor:
    """Backbone features (all views) for bank rows, running the trainable stages when needed."""
    pooled = torch.from_numpy(bank.pooled[rows, flips])
    if bank.acts is None:
        return pooled
    n_views = len(model.config.views)
    per_view = pooled.shape[1] // n_views
    out = []
    for v in range(n_views):
        act = torch.from_numpy(bank.acts[v][rows, flips])
        cached = [pooled[:, v * per_view : (v + 1) * per_view]] if per_view else []
        out.append(model.features(act, start=bank.start, cached=cached))
    return torch.cat(out, dim=1)
