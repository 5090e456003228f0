"""Training a PerFace model on similarity triplets (the paper's loss and optimiser by default).

``perface train --config FILE`` reads a YAML :class:`TrainConfig`. Frozen backbone parts are run
once and cached (:mod:`perface.metric.features`), so CPU training of the head and upper levels takes
minutes. Validation triplet accuracy is measured every epoch; the best checkpoint is kept, training
stops early when it stops improving, and an interrupted run resumes from ``checkpoint.pt``. With
``val_fraction: 0`` (a final fit after choosing settings by cross-validation) it runs the fixed number
of epochs and keeps the last. An optional linear attribute head is fitted in closed form afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from perface.datasets import LabelTripletConfig, TripletSet, label_triplets
from perface.datasets.label_triplets import resolve_root
from perface.face.io import PerFaceError
from perface.metric.features import FeatureBank, bank_features, build_feature_bank
from perface.metric.losses import TripletMarginLoss
from perface.metric.model import ModelConfig, PerFaceModel


@dataclass(frozen=True)
class DataConfig:
    """Where triplets come from. ``kind='omi'`` builds rating-derived triplets (a stand-in)."""

    kind: Literal["omi", "simceleba", "csv", "avfs"] = "omi"
    root: str = "../shared/data/omi"
    test_fraction: float = 0.2  # held-out faces (omi) or triplets (others)
    val_fraction: float = 0.1
    subset: Literal["d1", "d2"] = "d1"  # human data: all triplets (majority) or unanimous only
    split: Literal["random", "i", "ii", "iii"] = "random"  # human data: by triplet, or the paper's identity splits
    ratings: dict[str, Any] = field(default_factory=dict)  # RatingTripletConfig overrides
    test_candidates: int = 12_000  # rating-derived candidates drawn among held-out faces
    seed: int = 0
    cv_folds: int = 0  # > 0 (omi): validate on fold `cv_fold` of the non-test faces, train on the other folds
    cv_fold: int = 0
    labelled: tuple[LabelTripletConfig, ...] = ()  # real-photo label triplets added to the training set (omi)
    extra: tuple[str, ...] = ()  # anchor,positive,negative[,weight] CSV files added to the training set (omi)
    images: str | None = None  # avfs: the folder of the images the JSON names by id (default: the JSON's folder)


@dataclass(frozen=True)
class OptimConfig:
    """The paper's optimiser (SGD, lr 0.01, momentum 0.9, weight decay 5e-4, batch 32) plus a schedule."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 32
    epochs: int = 40
    patience: int = 8
    keep: Literal["best", "last"] = "best"  # which epoch's model to save (always "last" without validation)
    cosine_schedule: bool = True
    seed: int = 0


@dataclass(frozen=True)
class LossConfig:
    """The paper's margin loss; ``weighted`` weights each triplet by its vote agreement."""

    margin: float = 0.1
    reduction: Literal["mean", "nonzero"] = "mean"
    weighted: bool = False
    aux_attributes: bool = False  # regress rating means from the embedding as an auxiliary signal
    aux_weight: float = 0.3
    # The margin of the label triplets (data.labelled) when set, the rating-derived ones keeping ``margin``: a wider
    # one asks the gender x age-group cells to sit further apart than their faces spread.
    label_margin: float | None = None


@dataclass(frozen=True)
class AttributeHeadConfig:
    """Linear attribute head (OMI only): ridge regression of the rating-space coordinates of training faces,
    mixed into the embedding with ``weight`` (see :class:`perface.metric.model.ProjectionHead`)."""

    enabled: bool = False
    ridge: float = 1000.0
    weight: float = 0.15


@dataclass(frozen=True)
class LabelHeadConfig:
    """Linear label head (issue 18): ridge regression of real photos' gender and age group (+1/-1) on the features,
    fitted on the training part of every ``data.labelled`` source, and appended to the attribute part of the
    embedding (needs ``attribute_head``), so faces that differ in gender or age group sit further apart."""

    enabled: bool = False
    ridge: float = 1000.0
    weight: float = 0.15  # the label part's weight in the embedding (as attribute_head.weight for the ratings)


LABEL_COLUMNS = ("male", "young")  # +1 / -1 targets of the label head


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; saved next to the model for reproducibility."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    attribute_head: AttributeHeadConfig = field(default_factory=AttributeHeadConfig)
    label_head: LabelHeadConfig = field(default_factory=LabelHeadConfig)
    flip_augment: bool = True
    # Fine-tune: start from a saved model ("default": the shipped one, or a model folder) instead of a fresh head.
    # Its architecture replaces ``model``, its feature standardisation and attribute part are kept, and the
    # model as loaded (epoch 0) competes with every epoch on validation (``optim.keep: best``).
    init_from: str | None = None
    out: str = "runs/perface"
    cache_dir: str = ".cache/perface"
    threads: int | None = None


def _build(cls, values: dict[str, Any], where: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise PerFaceError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(known)}")
    return cls(**values)


def config_from_dict(d: dict[str, Any], where: str = "config") -> TrainConfig:
    """A :class:`TrainConfig` from nested dicts, rejecting unknown keys with a clear message."""
    d = dict(d or {})
    parts = {
        "data": (DataConfig, d.pop("data", {}) or {}),
        "optim": (OptimConfig, d.pop("optim", {}) or {}),
        "loss": (LossConfig, d.pop("loss", {}) or {}),
        "attribute_head": (AttributeHeadConfig, d.pop("attribute_head", {}) or {}),
        "label_head": (LabelHeadConfig, d.pop("label_head", {}) or {}),
    }
    data = dict(parts["data"][1])
    if "labelled" in data:
        data["labelled"] = tuple(_build(LabelTripletConfig, dict(v or {}), f"{where}: data: labelled")
                                 for v in data["labelled"] or ())
    if "extra" in data:
        extra = data["extra"] or ()
        if isinstance(extra, str) or not all(isinstance(v, str) for v in extra):
            raise PerFaceError(f"{where}: data: extra must be a list of CSV file paths, got {extra!r}")
        if extra and data.get("kind", "omi") != "omi":
            raise PerFaceError(f"{where}: data: extra adds triplets to kind 'omi' only; for {data['kind']!r} "
                               "put every triplet in its own data")
        data["extra"] = tuple(extra)
    parts["data"] = (DataConfig, data)
    built = {k: _build(c, v, f"{where}: {k}") for k, (c, v) in parts.items()}
    try:
        built["model"] = ModelConfig.from_dict(d.pop("model", {}) or {})
    except TypeError as exc:
        raise PerFaceError(f"{where}: model: {exc}") from None
    return _build(TrainConfig, {**d, **built}, where)


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    """Read a YAML training config; relative data/out/cache paths are taken relative to the file."""
    import yaml

    from perface.face.io import InputError

    p = Path(path)
    if not p.is_file():
        raise InputError(p, "config file not found")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(p, f"invalid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise InputError(p, "config must be a mapping")
    cfg = config_from_dict(raw, where=str(p))
    base = p.resolve().parent.parent if p.resolve().parent.name == "configs" else p.resolve().parent

    def rel(s: str) -> str:
        return s if os.path.isabs(s) else str((base / s).resolve())

    data = dataclasses.replace(cfg.data, root=rel(cfg.data.root),
                               labelled=tuple(resolve_root(c, base) for c in cfg.data.labelled),
                               extra=tuple(rel(e) for e in cfg.data.extra),
                               images=None if cfg.data.images is None else rel(cfg.data.images))
    init = cfg.init_from if cfg.init_from in (None, "default") else rel(cfg.init_from)
    return dataclasses.replace(cfg, data=data, out=rel(cfg.out), cache_dir=rel(cfg.cache_dir), init_from=init)


@dataclass
class Splits:
    """Train/val/test triplets (and, for rating-derived data, the face ids behind each split)."""

    train: TripletSet
    val: TripletSet
    test: TripletSet
    faces: dict[str, tuple[str, ...]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    train_space: Any = None  # OMI: the rating space (RatingSpace) the training triplets were built in


def make_splits(cfg: DataConfig) -> Splits:
    """Build the triplet splits a config asks for (faces held out for OMI, triplets otherwise)."""
    from perface import datasets as ds

    if cfg.kind == "omi":
        rcfg = _rating_config(cfg)
        ratings = ds.load_ratings(cfg.root, rcfg.rating_types, rcfg.needed_attributes)
        ids = list(ratings.face_ids)
        rest, test_ids = ds.split_faces(ids, cfg.test_fraction, seed=cfg.seed)
        if cfg.cv_folds > 0:
            train_ids, val_ids = _cv_split(rest, cfg.cv_folds, cfg.cv_fold, cfg.seed)
        else:
            val_share = cfg.val_fraction / max(1e-9, 1 - cfg.test_fraction)
            train_ids, val_ids = ds.split_faces(rest, val_share, seed=cfg.seed + 1)
        rep_train = ds.build_rating_triplets(cfg.root, rcfg, train_ids, ratings=ratings, name="train")
        small = dataclasses.replace(rcfg, n_candidates=max(2000, cfg.test_candidates // 3), seed=cfg.seed + 11)
        val = ds.rating_triplets(cfg.root, small, val_ids, ratings=ratings) if val_ids else TripletSet([], "val")
        test_cfg = dataclasses.replace(rcfg, n_candidates=cfg.test_candidates, seed=cfg.seed + 7)
        rep_test = ds.build_rating_triplets(cfg.root, test_cfg, test_ids, ratings=ratings, name="test")
        notes = {"reliability": rep_train.reliability, "weights": rep_train.weights,
                 "train_candidates": rep_train.n_candidates, "test_candidates": rep_test.n_candidates,
                 "test_gender_matched_kept": rep_test.n_matched_kept}
        train = rep_train.triplets
        if cfg.labelled:
            extra = [label_triplets(c) for c in cfg.labelled]
            notes["label_triplets"] = {f"{c.kind}": len(e) for c, e in zip(cfg.labelled, extra, strict=True)}
            train = TripletSet([*train, *(t for e in extra for t in e)], train.name)
        if cfg.extra:
            more = [ds.load_csv_triplets(p) for p in cfg.extra]
            notes["extra_triplets"] = {p: len(m) for p, m in zip(cfg.extra, more, strict=True)}
            train = TripletSet([*train, *(t for m in more for t in m)], train.name)
        return Splits(train, val, rep_test.triplets,
                      {"train": tuple(train_ids), "val": tuple(val_ids), "test": tuple(test_ids)}, notes,
                      rep_train.space)
    if cfg.kind == "simceleba":
        full = ds.load_simceleba(cfg.root)
    elif cfg.kind == "csv":
        full = ds.load_csv_triplets(cfg.root)
    elif cfg.kind == "avfs":
        full = ds.load_avfs(cfg.root, cfg.images or Path(cfg.root).parent)
    else:  # pragma: no cover - Literal guards this
        raise PerFaceError(f"unknown data kind {cfg.kind!r}")
    full = full.d2() if cfg.subset == "d2" else full.d1()
    if cfg.split != "random":
        try:
            parts = full.split_by_identity(cfg.split, seed=cfg.seed, fraction=cfg.test_fraction,
                                           val_fraction=cfg.val_fraction)
        except ValueError as exc:
            raise PerFaceError(f"{cfg.root}: split {cfg.split!r}: {exc}") from None
        return Splits(parts["train"], parts.get("val", TripletSet([], "val")), parts["test"])
    tr = 1 - cfg.test_fraction - cfg.val_fraction
    parts = full.split_random((tr, cfg.val_fraction, cfg.test_fraction), seed=cfg.seed)
    keys = list(parts)
    return Splits(parts[keys[0]], parts[keys[1]], parts[keys[2]])


def _cv_split(ids: tuple[str, ...], k: int, fold: int, seed: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Faces of fold ``fold`` of ``k`` (a seeded shuffle of ``ids``) and the faces of the other folds."""
    if k < 2 or not 0 <= fold < k:
        raise PerFaceError(f"cv_folds must be >= 2 and 0 <= cv_fold < cv_folds, got {k} and {fold}")
    order = np.random.default_rng(seed + 101).permutation(len(ids))
    held = {ids[i] for i in order[fold::k]}
    return tuple(f for f in ids if f not in held), tuple(f for f in ids if f in held)


def triplet_rows(triplets: TripletSet, bank: FeatureBank) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3) bank rows of (reference, positive, negative) and weights; triplets with a missing face are dropped."""
    rows, w = [], []
    for t in triplets:
        keys = (str(t.reference), str(t.positive), str(t.negative))
        if all(k in bank.index for k in keys):
            rows.append([bank.index[k] for k in keys])
            w.append(t.weight if t.weight is not None else 1.0)
    return np.array(rows, dtype=np.int64).reshape(-1, 3), np.array(w, dtype=np.float32)


@torch.no_grad()
def bank_embeddings(model: PerFaceModel, bank: FeatureBank, batch: int = 256) -> np.ndarray:
    """Embeddings of every bank image (averaged with the mirror image when the model does that)."""
    model.eval()
    out = []
    for s in range(0, len(bank), batch):
        rows = np.arange(s, min(len(bank), s + batch))
        feats = bank_features(model, bank, rows, np.zeros_like(rows))
        mirrored = bank_features(model, bank, rows, np.ones_like(rows)) if model.config.flip_average else None
        out.append(model.head.embed(feats, mirrored).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.embedding_dim), np.float32)


def accuracy_from_embeddings(emb: np.ndarray, rows: np.ndarray) -> float:
    """Share of triplets where cos(ref, pos) > cos(ref, neg) (ties count 0.5)."""
    if len(rows) == 0:
        return float("nan")
    sp = (emb[rows[:, 0]] * emb[rows[:, 1]]).sum(1)
    sn = (emb[rows[:, 0]] * emb[rows[:, 2]]).sum(1)
    return float(((sp > sn) + 0.5 * (sp == sn)).mean())


def _rating_config(cfg: DataConfig):
    """The rating-triplet configuration a data config implies (OMI only)."""
    from perface import datasets as ds

    return ds.RatingTripletConfig(**{**{"seed": cfg.seed}, **cfg.ratings})


def _fit_attribute_head(cfg: TrainConfig, model: PerFaceModel, bank: FeatureBank, space: Any,
                        log: Callable[[str], None]) -> None:
    """Fit the linear attribute head on the training faces' coordinates in the rating space the triplets use."""
    if space is None:
        raise PerFaceError("attribute_head: no rating space for the training faces (needs data.kind 'omi')")
    coords = space.features()
    where = {f: i for i, f in enumerate(space.face_ids)}
    rows = np.array([i for i, p in enumerate(bank.paths) if Path(p).stem in where], dtype=np.int64)
    if len(rows) == 0:
        raise PerFaceError("attribute_head: no training face in the feature bank")
    target = torch.from_numpy(np.stack([coords[where[Path(bank.paths[i]).stem]] for i in rows]).astype(np.float32))
    feats, mirrored = _head_inputs(model, bank, rows)
    model.head.fit_attributes(feats, mirrored, target, cfg.attribute_head.ridge, columns=slice(0, target.shape[1]))
    model.head.set_attribute_radius([(feats, mirrored)])
    log(f"attribute head: ridge {cfg.attribute_head.ridge:g} on {len(rows)} training faces, "
        f"weight {cfg.attribute_head.weight:g}")


def _head_inputs(model: PerFaceModel, bank: FeatureBank, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
    feats = bank_features(model, bank, rows, np.zeros_like(rows))
    mirrored = bank_features(model, bank, rows, np.ones_like(rows)) if model.config.flip_average else None
    return feats, mirrored


def _omi_rows(bank: FeatureBank, root: str | Path) -> np.ndarray:
    """Which bank images are the OMI data's own (``root``/images/...), not labelled photos mixed in."""
    return np.array([Path(p).parent.parent == Path(root) for p in bank.paths], dtype=bool)


def fit_label_head(cfg: TrainConfig, model: PerFaceModel, bank: FeatureBank, log: Callable[[str], None] = print
                   ) -> None:
    """Fit the label columns of the attribute head on the labelled training faces (gender, age group as +1/-1),
    then widen the padding radius to cover them and the OMI training faces (``bank``)."""
    from perface.datasets import labelled_training_faces

    if not cfg.data.labelled:
        raise PerFaceError("label_head needs data.labelled (the labelled faces it is fitted on)")
    faces = [f for c in cfg.data.labelled for f in labelled_training_faces(c)]
    lbank = build_feature_bank(model, [str(f.path) for f in faces], cache_dir=cfg.cache_dir, progress=False)
    faces = [f for f in faces if str(f.path) in lbank.index]
    rows = np.array([lbank.index[str(f.path)] for f in faces], dtype=np.int64)
    scale = cfg.label_head.weight / cfg.attribute_head.weight  # the head's outputs share attribute_head.weight
    target = torch.tensor([[1.0 if f.gender == "male" else -1.0, 1.0 if f.young else -1.0] for f in faces]) * scale
    feats, mirrored = _head_inputs(model, lbank, rows)
    n = model.config.attribute_outputs
    model.head.fit_attributes(feats, mirrored, target, cfg.label_head.ridge, columns=slice(n - len(LABEL_COLUMNS), n))
    omi = np.flatnonzero(_omi_rows(bank, cfg.data.root))
    model.head.set_attribute_radius([(feats, mirrored), _head_inputs(model, bank, omi)] if len(omi) else
                                    [(feats, mirrored)])
    log(f"label head: ridge {cfg.label_head.ridge:g} on {len(faces)} labelled faces, weight {cfg.label_head.weight:g}")


def _aux_targets(cfg: TrainConfig, bank: FeatureBank) -> tuple[np.ndarray, list[str]] | None:
    """z-scored attribute rating means per bank image (OMI only), for the auxiliary head."""
    if not cfg.loss.aux_attributes:
        return None
    if cfg.data.kind != "omi":
        raise PerFaceError("loss.aux_attributes needs data.kind 'omi' (attribute ratings)")
    from perface.datasets import APPEARANCE_ATTRIBUTES, attribute_table

    table = attribute_table(cfg.data.root)
    attrs = list(cfg.data.ratings.get("attributes", APPEARANCE_ATTRIBUTES))
    cols = np.stack([table.column(a) for a in attrs], axis=1).astype(np.float32)
    cols = (cols - cols.mean(0)) / cols.std(0).clip(1e-6)
    pos = {str(f): i for i, f in enumerate(table.face_ids)}
    y = np.full((len(bank), len(attrs)), np.nan, np.float32)
    for i, p in enumerate(bank.paths):
        j = pos.get(Path(p).stem)
        if j is not None:
            y[i] = cols[j]
    return y, attrs


@dataclass
class TrainResult:
    """What a run produced: the model folder, the best validation accuracy and the epoch log."""

    model_dir: Path
    best_val_accuracy: float | None  # None when trained without a validation split
    best_epoch: int
    history: list[dict[str, float]]
    seconds: float
    splits: Splits
    final_val_accuracy: float | None = None  # validation accuracy of the saved model (with its attribute head)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(cfg: TrainConfig, resume: bool = True, progress: bool = True,
          log: Callable[[str], None] = print) -> TrainResult:
    """Train, validate every epoch, keep the best model in ``cfg.out/model``; resume from a checkpoint."""
    t0 = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.optim.seed)
    if cfg.init_from and (cfg.attribute_head.enabled or cfg.label_head.enabled or cfg.loss.aux_attributes):
        raise PerFaceError("init_from keeps the loaded model's attribute part: turn attribute_head, label_head "
                           "and loss.aux_attributes off")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log(f"building triplets ({cfg.data.kind}: {cfg.data.root})")
    splits = make_splits(cfg.data)
    log(f"triplets: train {len(splits.train)}, val {len(splits.val)}, test {len(splits.test)}")
    model_cfg = cfg.model
    if cfg.loss.aux_attributes:
        from perface.datasets import APPEARANCE_ATTRIBUTES

        n_aux = len(cfg.data.ratings.get("attributes", APPEARANCE_ATTRIBUTES))
        model_cfg = dataclasses.replace(model_cfg, aux_outputs=n_aux)
    if cfg.attribute_head.enabled:
        if cfg.data.kind != "omi":
            raise PerFaceError("attribute_head needs data.kind 'omi' (attribute ratings)")
        n_attr = len(_rating_config(cfg.data).attributes)
        if cfg.label_head.enabled:
            n_attr += len(LABEL_COLUMNS)
        model_cfg = dataclasses.replace(model_cfg, attribute_outputs=n_attr, attribute_weight=cfg.attribute_head.weight)
    elif cfg.label_head.enabled:
        raise PerFaceError("label_head needs attribute_head (it joins the attribute part of the embedding)")
    if cfg.init_from:
        from perface.metric.model import load as load_model

        model = load_model(cfg.init_from)  # backbone frozen as built; each epoch below switches it to training
        model_cfg = model.config
        log(f"fine-tuning from {cfg.init_from} ({model.model_id}); its architecture replaces the config's model")
    else:
        model = PerFaceModel(model_cfg)
    paths = sorted({str(p) for s in (splits.train, splits.val, splits.test) for t in s
                    for p in (t.reference, t.a, t.b)})
    bank = build_feature_bank(model, paths, cache_dir=cfg.cache_dir, progress=progress)
    tr_rows, tr_w = triplet_rows(splits.train, bank)
    va_rows, _ = triplet_rows(splits.val, bank)
    if len(tr_rows) == 0:
        raise PerFaceError("no training triplets with detectable faces")
    tr_margin = None
    if cfg.loss.label_margin is not None and cfg.data.kind == "omi":  # triplets whose anchor is not an OMI face
        labelled = ~_omi_rows(bank, cfg.data.root)[tr_rows[:, 0]]
        tr_margin = np.where(labelled, cfg.loss.label_margin, cfg.loss.margin).astype(np.float32)
        log(f"margin {cfg.loss.label_margin:g} on {int(labelled.sum())} label triplets, {cfg.loss.margin:g} on the "
            "rest")
    train_imgs = np.unique(tr_rows)
    if not cfg.init_from:  # a loaded head keeps the standardisation it was trained with
        with torch.no_grad():
            train_feats = bank_features(model, bank, train_imgs, np.zeros_like(train_imgs))
            model.head.set_standardisation(train_feats)
            model.head.set_joined_centre(train_feats)
    aux = _aux_targets(cfg, bank)
    aux_y = torch.from_numpy(aux[0]) if aux else None

    loss_fn = TripletMarginLoss(margin=cfg.loss.margin, reduction="weighted" if cfg.loss.weighted else
                                cfg.loss.reduction)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=cfg.optim.lr, momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay)
    steps_per_epoch = math.ceil(len(tr_rows) / cfg.optim.batch_size)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.optim.epochs * steps_per_epoch)
             if cfg.optim.cosine_schedule else None)
    ckpt = out / "checkpoint.pt"
    start_epoch, best, best_epoch, history, bad = 0, -1.0, -1, [], 0
    best_state = None
    # Re-seed here: building features from scratch draws on torch's global RNG and reading them from the
    # cache does not, so without this a warm cache would give different dropout masks and weights.
    torch.manual_seed(cfg.optim.seed)
    rng = np.random.default_rng(cfg.optim.seed)  # batch order and flips
    if resume and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        if _resumable(state.get("config"), cfg):
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optim"])
            if sched is not None and state.get("sched"):
                sched.load_state_dict(state["sched"])
            start_epoch, best, best_epoch = state["epoch"] + 1, state["best"], state["best_epoch"]
            history, bad, best_state = state["history"], state["bad"], state["best_state"]
            if state.get("torch_rng") is not None:  # continue the same random streams as an unbroken run
                torch.set_rng_state(state["torch_rng"])
                rng.bit_generator.state = state["numpy_rng"]
            else:  # a checkpoint from before the streams were saved
                rng = np.random.default_rng(cfg.optim.seed + start_epoch)
            log(f"resumed from {ckpt} at epoch {start_epoch}")
        else:
            log(f"{ckpt} belongs to another config: starting afresh")
    no_val = len(va_rows) == 0
    if no_val:
        log(f"no validation triplets: training {cfg.optim.epochs} epochs and keeping the last")
    elif start_epoch == 0 and (model_cfg.identity_dim or cfg.init_from) and cfg.optim.keep == "best":
        # An identity-residual head starts AS the identity metric, a fine-tuned one as the loaded model: that
        # untrained model is a candidate too, so early stopping keeps it unless training really does better.
        best = accuracy_from_embeddings(bank_embeddings(model, bank), va_rows)
        best_epoch, best_state = 0, {k: v.detach().clone() for k, v in model.state_dict().items()}
        log(f"epoch   0  ({'the loaded model' if cfg.init_from else 'the identity metric'})  val acc {best:.4f}")
    for epoch in range(start_epoch, cfg.optim.epochs):
        model.train()
        order = rng.permutation(len(tr_rows))
        total = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.optim.epochs}", unit="step",
                   disable=not progress, leave=False)
        for s in bar:
            idx = order[s * cfg.optim.batch_size : (s + 1) * cfg.optim.batch_size]
            rows = tr_rows[idx]
            flips = (rng.random(rows.shape) < 0.5).astype(np.int64) if cfg.flip_augment else np.zeros_like(rows)
            flat, fflat = rows.reshape(-1), flips.reshape(-1)
            emb, z_aux = model.head(bank_features(model, bank, flat, fflat), with_aux=True)
            emb = emb.view(len(rows), 3, -1)
            w = torch.from_numpy(tr_w[idx]) if cfg.loss.weighted else None
            margins = None if tr_margin is None else torch.from_numpy(tr_margin[idx])
            loss = loss_fn(emb[:, 0], emb[:, 1], emb[:, 2], w, margins)
            if aux_y is not None and z_aux is not None:
                target = aux_y[torch.from_numpy(flat)]
                ok = ~torch.isnan(target)
                if ok.any():
                    loss = loss + cfg.loss.aux_weight * ((z_aux - target.nan_to_num()) ** 2)[ok].mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += float(loss.detach())
            bar.set_postfix(loss=f"{total / (s + 1):.4f}")
        emb_all = bank_embeddings(model, bank)
        tr_acc = accuracy_from_embeddings(emb_all, tr_rows)
        va_acc = None if no_val else accuracy_from_embeddings(emb_all, va_rows)
        history.append({"epoch": epoch + 1, "loss": total / steps_per_epoch, "train_acc": tr_acc, "val_acc": va_acc})
        improved = no_val or va_acc > best
        if no_val or cfg.optim.keep == "last":  # the model as it stands is the one kept
            best, best_epoch, best_state, bad = (-1.0 if no_val else va_acc), epoch + 1, None, 0
        elif improved:
            best, best_epoch, bad = va_acc, epoch + 1, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
        mark = "  *best" if improved and cfg.optim.keep == "best" else ""
        val_txt = "" if no_val else f"  val acc {va_acc:.4f}{mark}"
        log(f"epoch {epoch + 1:3d}  loss {total / steps_per_epoch:.4f}  train acc {tr_acc:.4f}{val_txt}")
        torch.save({"config": dataclasses.asdict(cfg), "model": model.state_dict(), "optim": opt.state_dict(),
                    "sched": sched.state_dict() if sched else None, "epoch": epoch, "best": best,
                    "best_epoch": best_epoch, "history": history, "bad": bad, "best_state": best_state,
                    "torch_rng": torch.get_rng_state(), "numpy_rng": rng.bit_generator.state}, ckpt)
        if bad >= cfg.optim.patience:
            log(f"early stop: no val improvement for {bad} epochs")
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    final_val = None
    if cfg.attribute_head.enabled:
        _fit_attribute_head(cfg, model, bank, splits.train_space, log)
    if cfg.label_head.enabled:
        fit_label_head(cfg, model, bank, log)
    if (cfg.attribute_head.enabled or cfg.label_head.enabled) and not no_val:
        final_val = accuracy_from_embeddings(bank_embeddings(model, bank), va_rows)
        log(f"val acc with the attribute head: {final_val:.4f}")
    meta = {"trained_on": describe_data(cfg.data), "best_val_accuracy": None if no_val else best,
            "best_epoch": best_epoch, "final_val_accuracy": final_val,
            "train_triplets": int(len(tr_rows)), "val_triplets": int(len(va_rows)),
            "held_out_faces": list(splits.faces.get("test", ())), "config": dataclasses.asdict(cfg)}
    model_dir = model.save(out / "model", metadata=meta, overwrite=True)
    (out / "history.json").write_text(json.dumps(history, indent=2))
    secs = time.perf_counter() - t0
    if no_val:
        summary = f"last epoch {best_epoch}"
    elif cfg.optim.keep == "last":
        summary = f"last epoch {best_epoch}, val acc {best:.4f}"
    else:
        summary = f"best val acc {best:.4f} (epoch {best_epoch})"
    log(f"done in {secs / 60:.1f} min: {summary} -> {model_dir}")
    return TrainResult(model_dir, None if no_val else best, best_epoch, history, secs, splits, final_val)


@dataclass
class CrossValidation:
    """k-fold cross-validation over the non-test faces: validation accuracy per fold and epoch."""

    per_epoch: list[list[float]]  # [fold][epoch] validation accuracy of the MLP embedding
    final: list[float | None]  # [fold] validation accuracy of the saved model (attribute head included)

    def mean_per_epoch(self) -> list[float]:
        return np.mean(np.array(self.per_epoch, dtype=float), axis=0).tolist()

    def mean_final(self) -> float | None:
        vals = [v for v in self.final if v is not None]
        return float(np.mean(vals)) if vals else None


def cross_validate(cfg: TrainConfig, folds: int = 5, resume: bool = True, progress: bool = True,
                   log: Callable[[str], None] = print) -> CrossValidation:
    """Train once per fold of the non-test faces (OMI), validating on that fold; the test faces stay unseen.

    Every fold runs the configured number of epochs (no early stopping), so the mean curve shows which
    epoch count and settings to use for the final fit on all non-test faces (``val_fraction: 0``).
    """
    if cfg.data.kind != "omi":
        raise PerFaceError("cross_validate needs data.kind 'omi' (folds are drawn over faces)")
    per_epoch, final = [], []
    for k in range(folds):
        fold_cfg = dataclasses.replace(
            cfg, data=dataclasses.replace(cfg.data, cv_folds=folds, cv_fold=k),
            optim=dataclasses.replace(cfg.optim, keep="last"), out=str(Path(cfg.out) / f"fold{k}"))
        log(f"fold {k + 1}/{folds}")
        res = train(fold_cfg, resume=resume, progress=progress, log=log)
        per_epoch.append([h["val_acc"] for h in res.history])
        final.append(res.final_val_accuracy if res.final_val_accuracy is not None else per_epoch[-1][-1])
        curve = ", ".join(f"{a:.4f}" for a in per_epoch[-1])
        log(f"fold {k + 1}: val acc by epoch {curve}; saved model {final[-1]:.4f}")
    return CrossValidation(per_epoch, final)


def _resumable(saved: dict | None, cfg: TrainConfig) -> bool:
    """A checkpoint resumes a run when everything but the epoch budget and patience is the same."""
    if not saved:
        return False
    now = dataclasses.asdict(cfg)
    for d in (saved, now):
        d = d.get("optim", {})
        d.pop("epochs", None)
        d.pop("patience", None)
    return saved == now


def describe_data(cfg: DataConfig) -> str:
    """One honest sentence on what the model learned from."""
    if cfg.kind == "omi":
        text = ("rating-derived triplets (a stand-in for human similarity judgments) built from One Million "
                "Impressions attribute ratings of synthetic StyleGAN2 faces")
        for c in cfg.labelled:
            if c.n_triplets:
                text += (f", plus {c.n_triplets} label-derived triplets from the training part "
                         f"({c.train_fraction:g}) of {c.kind} (same gender and age group closer than different"
                         + (f"; in {c.gender_first:.0%} of them the same gender closer than the same age group"
                            if c.gender_first else "") + ")")
            else:
                text += f", plus {c.kind}'s gender and age-group labels (training part, {c.train_fraction:g})"
        for e in cfg.extra:
            text += f", plus the triplets of {Path(e).name}"
        return text
    return f"human similarity triplets ({cfg.kind}, subset {cfg.subset.upper()})"
