"""perface.metric.train: config parsing, and a tiny end-to-end run on CSV triplets that must learn them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from perface.face.io import PerFaceError
from perface.metric.train import config_from_dict, load_config, train

CHIPS = Path(__file__).parents[1] / "data" / "chips"


def test_unknown_keys_are_rejected():
    with pytest.raises(PerFaceError, match="unknown key"):
        config_from_dict({"optim": {"learning_rate": 0.1}})
    with pytest.raises(PerFaceError, match="unknown key"):
        config_from_dict({"epochz": 3})


def test_default_config_file_parses():
    cfg = load_config(Path(__file__).parents[2] / "configs" / "default.yaml")
    assert cfg.optim.lr == 0.01 and cfg.optim.momentum == 0.9 and cfg.optim.weight_decay == 5e-4
    assert cfg.optim.batch_size == 32 and cfg.loss.margin == 0.1
    assert cfg.data.kind == "omi" and Path(cfg.data.root).is_absolute()


def test_tiny_training_run_learns_and_resumes(tmp_path):
    # Triplets whose answer is "the same face (mirrored) is more similar than another face".
    faces = sorted(CHIPS.glob("omi_*.jpg"))[:8]
    mirrored = []
    from PIL import Image, ImageOps

    for f in faces:
        m = tmp_path / f"m_{f.name}"
        ImageOps.mirror(Image.open(f)).save(m, quality=95)
        mirrored.append(m)
    rows = []
    for i, f in enumerate(faces):
        for j in range(len(faces)):
            if j != i:
                rows.append([str(f), str(mirrored[i]), str(faces[j])])
    with open(tmp_path / "triplets.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["anchor", "positive", "negative"])
        w.writerows(rows)
    raw = {"data": {"kind": "csv", "root": str(tmp_path / "triplets.csv"), "test_fraction": 0.2,
                    "val_fraction": 0.2},
           "model": {"views": [0.25], "hidden": 32, "embed_dim": 16, "flip_average": False},
           "optim": {"epochs": 3, "patience": 5, "batch_size": 8},
           "out": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache")}
    res = train(config_from_dict(raw), progress=False, log=lambda m: None)
    assert (res.model_dir / "model.safetensors").is_file()
    assert len(res.history) == 3
    assert res.history[-1]["train_acc"] >= 0.9  # mirrored copies are easy to tell apart from others
    # A second call with more epochs resumes from the checkpoint instead of starting over.
    raw["optim"]["epochs"] = 4
    logs: list[str] = []
    res2 = train(config_from_dict(raw), progress=False, log=logs.append)
    assert any("resumed" in m for m in logs)
    assert len(res2.history) == 4 and res2.history[:3] == res.history


def _write_ring_triplets(path: Path) -> None:
    """12 CSV triplets over 6 face chips: each face is "closer" to the next one than to the one opposite."""
    faces = sorted(CHIPS.glob("omi_*.jpg"))[:6]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["anchor", "positive", "negative"])
        w.writerows([str(faces[i]), str(faces[(i + 1) % 6]), str(faces[(i + 3) % 6])] for i in range(6) for _ in (0, 1))


def test_without_validation_split_trains_fixed_epochs_and_keeps_the_last(tmp_path):
    _write_ring_triplets(tmp_path / "triplets.csv")
    raw = {"data": {"kind": "csv", "root": str(tmp_path / "triplets.csv"), "test_fraction": 0.2, "val_fraction": 0},
           "model": {"views": [0.25], "hidden": 16, "embed_dim": 8, "flip_average": False},
           "optim": {"epochs": 2, "patience": 1, "batch_size": 4},
           "out": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache")}
    logs: list[str] = []
    res = train(config_from_dict(raw), progress=False, log=logs.append)
    assert res.best_val_accuracy is None and res.best_epoch == 2 and len(res.history) == 2
    assert all(h["val_acc"] is None for h in res.history)
    assert any("keeping the last" in m for m in logs)


def _write_omi_like(root: Path, n_faces: int, seed: int = 0) -> dict[str, list[float]]:
    """An OMI-layout folder (ratings with repeats, means, images) over the test face chips."""
    import gzip
    import shutil

    import numpy as np

    rng = np.random.default_rng(seed)
    means = {a: rng.uniform(10, 90, n_faces).round(1).tolist() for a in ("age", "hair", "skin")}
    lines = ["rating,attribute,rating_type,stimulus"]
    for a, values in means.items():
        for f, v in enumerate(values):
            lines += [f"{v + o:g},{a},normal,{f + 1}" for o in (-6, -3, 0, 3, 6) * 2]
    (root / "images").mkdir(parents=True)
    with gzip.open(root / "attribute_ratings.csv.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    rows = [",".join([str(f + 1), *(f"{means[a][f]:g}" for a in means)]) for f in range(n_faces)]
    (root / "attribute_means.csv").write_text("\n".join(["stimulus,age,hair,skin", *rows]) + "\n")
    for f, chip in enumerate(sorted(CHIPS.glob("omi_*.jpg"))[:n_faces]):
        shutil.copy(chip, root / "images" / f"{f + 1}.jpg")
    return means


def test_attribute_head_is_fitted_saved_and_mixed_into_the_embedding(tmp_path):
    import numpy as np
    import torch

    from perface.metric.model import load

    _write_omi_like(tmp_path / "omi", 12)
    ratings = {"attributes": ["age", "hair", "skin"], "gender_matched_fraction": 0.0, "n_candidates": 300,
               "bootstrap": 50, "threshold": 0.9}
    raw = {"data": {"kind": "omi", "root": str(tmp_path / "omi"), "test_fraction": 0.25, "val_fraction": 0,
                    "ratings": ratings, "test_candidates": 200},
           "model": {"views": [0.25], "hidden": 16, "embed_dim": 8},
           "optim": {"epochs": 1, "batch_size": 8},
           "attribute_head": {"enabled": True, "ridge": 1.0, "weight": 0.2},
           "out": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache")}
    cfg = config_from_dict(raw)
    res = train(cfg, progress=False, log=lambda m: None)
    model = load(res.model_dir)
    assert model.config.attribute_outputs == 3 and model.config.embedding_dim == 8 + 3 + 1
    assert float(model.head.attribute_radius2) > 1.0
    # On its training faces a lightly regularised ridge reproduces the rating-space coordinates.
    from perface import datasets as ds
    from perface.metric.features import bank_features, build_feature_bank
    from perface.metric.train import _rating_config

    rcfg = _rating_config(cfg.data)
    space = ds.rating_space(ds.load_ratings(cfg.data.root, rcfg.rating_types, rcfg.needed_attributes), rcfg,
                            res.splits.faces["train"])
    paths = [str(tmp_path / "omi" / "images" / f"{f}.jpg") for f in space.face_ids]
    bank = build_feature_bank(model, paths, cache_dir=None, progress=False)
    rows = np.arange(len(bank))
    with torch.no_grad():
        f0, f1 = bank_features(model, bank, rows, 0 * rows), bank_features(model, bank, rows, 0 * rows + 1)
        pred = (0.5 * (model.head.attributes(f0) + model.head.attributes(f1))).numpy()
        final = model.head.embed(f0, f1)
        mlp = model.head(f0) + model.head(f1)
        mlp = mlp / mlp.norm(dim=1, keepdim=True)
    target = space.features()
    assert np.corrcoef(pred.ravel(), target.ravel())[0, 1] > 0.95
    # 1 - cos(final) = [2 (1 - cos_mlp) + w^2 |p - p'|^2 + (pad - pad')^2] / (2 R^2), exactly.
    r2, w = float(model.head.attribute_radius2), model.config.attribute_weight
    p = torch.from_numpy(pred) * w
    pad = (r2 - 1 - (p**2).sum(1)).sqrt()
    lhs = 1 - final[0] @ final[1]
    rhs = (2 * (1 - mlp[0] @ mlp[1]) + ((p[0] - p[1]) ** 2).sum() + (pad[0] - pad[1]) ** 2) / (2 * r2)
    assert float(lhs) == pytest.approx(float(rhs), abs=1e-5)
    assert np.allclose(model.embed([str(p) for p in paths[:2]]), final[:2].numpy(), atol=1e-4)


def test_cv_split_partitions_faces_into_disjoint_folds():
    from perface.metric.train import _cv_split

    ids = tuple(str(i) for i in range(11))
    vals = [_cv_split(ids, 3, k, seed=0)[1] for k in range(3)]
    assert sorted(f for v in vals for f in v) == sorted(ids)  # every face validates exactly once
    for k, v in enumerate(vals):
        train_ids, _ = _cv_split(ids, 3, k, seed=0)
        assert not set(train_ids) & set(v) and len(train_ids) + len(v) == 11
    with pytest.raises(PerFaceError, match="cv_folds"):
        _cv_split(ids, 1, 0, seed=0)


def test_cross_validation_never_uses_the_test_faces(tmp_path):
    from perface.metric.train import cross_validate, make_splits

    _write_omi_like(tmp_path / "omi", 16, seed=1)
    ratings = {"attributes": ["age", "hair", "skin"], "gender_matched_fraction": 0.0, "n_candidates": 300,
               "bootstrap": 50, "threshold": 0.9}
    raw = {"data": {"kind": "omi", "root": str(tmp_path / "omi"), "test_fraction": 0.25, "val_fraction": 0,
                    "ratings": ratings,
                    "test_candidates": 200},
           "model": {"views": [0.25], "hidden": 16, "embed_dim": 8, "flip_average": False},
           "optim": {"epochs": 2, "batch_size": 8},
           "attribute_head": {"enabled": True, "ridge": 10.0},
           "out": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache")}
    cfg = config_from_dict(raw)
    test_faces = set(make_splits(cfg.data).faces["test"])
    for k in range(3):
        fold = make_splits(config_from_dict({**raw, "data": {**raw["data"], "cv_folds": 3, "cv_fold": k}}).data)
        assert set(fold.faces["test"]) == test_faces
        assert not (set(fold.faces["train"]) | set(fold.faces["val"])) & test_faces
    res = cross_validate(cfg, folds=3, progress=False, log=lambda m: None)
    assert len(res.per_epoch) == 3 and all(len(c) == 2 for c in res.per_epoch)
    assert all(0.0 <= a <= 1.0 for c in res.per_epoch for a in c)
    assert len(res.final) == 3 and 0.0 <= res.mean_final() <= 1.0
    # A fold is scored with the attribute head it saves, not only the MLP part (its finished run is resumed).
    log: list[str] = []
    fold0 = train(config_from_dict({**raw, "data": {**raw["data"], "cv_folds": 3, "cv_fold": 0},
                                    "optim": {**raw["optim"], "keep": "last"}, "out": str(tmp_path / "run" / "fold0")}),
                  progress=False, log=log.append)
    assert not any(m.startswith("epoch") for m in log)  # resumed, not trained again
    assert fold0.final_val_accuracy is not None and fold0.final_val_accuracy == pytest.approx(res.final[0])


def test_weights_do_not_depend_on_the_feature_cache_or_the_callers_rng(tmp_path):
    """Cold cache, warm cache after unrelated RNG use, and a resumed run all give the same weights."""
    import numpy as np
    import torch
    from safetensors.numpy import load_file

    _write_ring_triplets(tmp_path / "triplets.csv")

    def run(out: str, epochs: int) -> dict[str, np.ndarray]:
        raw = {"data": {"kind": "csv", "root": str(tmp_path / "triplets.csv"), "test_fraction": 0.2,
                        "val_fraction": 0},
               "model": {"views": [0.25], "hidden": 16, "embed_dim": 8, "flip_average": False, "dropout": 0.5},
               "optim": {"epochs": epochs, "batch_size": 4, "cosine_schedule": False}, "flip_augment": False,
               "out": str(tmp_path / out), "cache_dir": str(tmp_path / "cache")}
        res = train(config_from_dict(raw), progress=False, log=lambda m: None)
        return load_file(res.model_dir / "model.safetensors")

    cold = run("cold", 2)
    torch.rand(1000)  # a caller that used the global RNG before training
    warm = run("warm", 2)
    run("resumed", 1)
    resumed = run("resumed", 2)
    for k in cold:
        assert np.array_equal(cold[k], warm[k]), k
        assert np.array_equal(cold[k], resumed[k]), k


@pytest.mark.parametrize(("backbone", "levels", "train_from"), [
    ("mobilefacenet", ["stage4", "head"], None),
    ("mobilefacenet", ["stage5"], "stage5"),
])
def test_tfjs_backbones_train_on_csv_triplets(tmp_path, backbone, levels, train_from):
    """A TF.js network as the metric's backbone: frozen, or fine-tuned from a chosen stage, learns CSV triplets."""
    import torch

    from perface.backbones.tfjs import load_tfjs_model
    from perface.metric.model import load

    _write_ring_triplets(tmp_path / "ring.csv")
    raw = {"data": {"kind": "csv", "root": str(tmp_path / "ring.csv"), "test_fraction": 0.0, "val_fraction": 0.0},
           "model": {"backbone": backbone, "feature_levels": levels, "train_from": train_from, "views": [0.25],
                     "hidden": 16, "embed_dim": 8, "flip_average": False, "color_grid": 0},
           "optim": {"epochs": 6, "batch_size": 4, "lr": 0.05},
           "out": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache")}
    res = train(config_from_dict(raw), progress=False, log=lambda m: None)
    # frozen: the head alone learns the ring; fine-tuning a whole stage in 6 epochs only has to beat chance (this
    # test checks the wiring: the stage trains, is saved and is loaded back)
    assert max(h["train_acc"] for h in res.history) >= (0.9 if train_from is None else 0.6)
    model = load(res.model_dir)
    assert model.config.backbone == backbone
    if train_from is not None:  # the fine-tuned stage is saved and loaded back, the frozen rest is not stored
        from safetensors.torch import load_file

        saved = load_file(str(res.model_dir / "model.safetensors"))
        tuned_keys = [k for k in saved if k.startswith("features.backbone.")]
        pretrained = load_tfjs_model("mobilefacenet").state_dict()
        assert tuned_keys and all(k.removeprefix("features.backbone.graph.") in pretrained for k in tuned_keys)
        changed = [k for k in tuned_keys
                   if not torch.equal(saved[k], pretrained[k.removeprefix("features.backbone.graph.")])]
        assert changed, "fine-tuning changed no weight of the chosen stage"
        assert all(torch.equal(model.state_dict()[k], saved[k]) for k in tuned_keys)
    side = model.features.backbone.input_size
    assert side in (112, 224)
    tuned = model.features.backbone.trainable_stages()
    assert tuned == ([] if train_from is None else [train_from])
    faces = sorted(CHIPS.glob("omi_*.jpg"))[:2]
    emb = model.embed([str(f) for f in faces])
    assert emb.shape == (2, 8) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    with torch.no_grad():
        assert model.similarity(str(faces[0]), str(faces[0])) == pytest.approx(1.0, abs=1e-5)


def test_identity_residual_head_keeps_the_identity_metric_unless_validation_says_otherwise(tmp_path):
    _write_ring_triplets(tmp_path / "triplets.csv")
    raw = {"data": {"kind": "csv", "root": str(tmp_path / "triplets.csv"), "test_fraction": 0.2,
                    "val_fraction": 0.3},
           "model": {"views": [0.25], "hidden": 16, "embed_dim": 8, "flip_average": False, "identity_dim": 128},
           "optim": {"epochs": 2, "patience": 2, "batch_size": 4},
           "out": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache")}
    logs: list[str] = []
    res = train(config_from_dict(raw), progress=False, log=logs.append)
    assert any("epoch   0  (the identity metric)" in m for m in logs)
    epoch0 = float(next(m for m in logs if "epoch   0" in m).split()[-1])
    assert res.best_val_accuracy >= epoch0 and 0 <= res.best_epoch <= 2


def test_fine_tuning_starts_from_the_saved_model_and_keeps_it_unless_validation_says_otherwise(tmp_path):
    """``init_from``: the saved model's architecture and standardisation are used, it is epoch 0's candidate, and
    a fine-tune that validation does not prefer saves the loaded weights unchanged."""
    import torch

    from perface.metric.model import load

    _write_ring_triplets(tmp_path / "triplets.csv")
    base = {"data": {"kind": "csv", "root": str(tmp_path / "triplets.csv"), "test_fraction": 0.2, "val_fraction": 0.3},
            "model": {"views": [0.25], "hidden": 16, "embed_dim": 8, "flip_average": False},
            "optim": {"epochs": 1, "batch_size": 4}, "cache_dir": str(tmp_path / "cache")}
    first = train(config_from_dict({**base, "out": str(tmp_path / "a")}), progress=False, log=lambda m: None)
    logs: list[str] = []
    tune = {**base, "model": {"hidden": 999}, "init_from": str(first.model_dir), "out": str(tmp_path / "b"),
            "optim": {"epochs": 2, "patience": 2, "batch_size": 4, "lr": 0.5}}
    res = train(config_from_dict(tune), progress=False, log=logs.append)
    assert any("fine-tuning from" in m for m in logs) and any("epoch   0  (the loaded model)" in m for m in logs)
    a, b = load(first.model_dir), load(res.model_dir)
    assert b.config.hidden == 16  # the loaded architecture, not the config's
    epoch0 = float(next(m for m in logs if "epoch   0" in m).split()[-1])
    assert res.best_val_accuracy >= epoch0
    same = all(torch.equal(v, b.head.state_dict()[k]) for k, v in a.head.state_dict().items())
    assert same == (res.best_epoch == 0)  # kept unchanged exactly when epoch 0 won
    with pytest.raises(PerFaceError, match="init_from"):
        train(config_from_dict({**tune, "attribute_head": {"enabled": True}}), progress=False, log=lambda m: None)


def test_labelled_sources_parse_resolve_and_round_trip(tmp_path):
    import dataclasses

    from perface.datasets import LabelTripletConfig
    from perface.metric.train import describe_data

    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "x.yaml").write_text(
        "data:\n  labelled:\n    - {kind: utkface, root: data/utk, n_triplets: 50, train_fraction: 0.2}\n")
    cfg = load_config(tmp_path / "configs" / "x.yaml")
    (src,) = cfg.data.labelled
    assert isinstance(src, LabelTripletConfig) and src.n_triplets == 50
    assert Path(src.root) == (tmp_path / "data" / "utk").resolve()  # relative to the repository root
    assert config_from_dict(dataclasses.asdict(cfg)) == cfg  # as saved in a model's metadata
    assert "50 label-derived triplets" in describe_data(cfg.data)
    assert "gender closer" not in describe_data(cfg.data)
    ranked = dataclasses.replace(cfg.data, labelled=(dataclasses.replace(src, gender_first=0.25),))
    assert "in 25% of them the same gender closer than the same age group" in describe_data(ranked)
    with pytest.raises(PerFaceError, match="unknown key"):
        config_from_dict({"data": {"labelled": [{"kind": "utkface", "triplets": 5}]}})


def test_extra_csv_triplets_join_the_omi_training_set_only(tmp_path):
    """data.extra: CSV triplets (e.g. issue 18's swapped stand-in) are added to the rating-derived training
    triplets, never to the held-out ones, and relative paths resolve against the repository root."""
    import dataclasses

    from perface.metric.train import describe_data, make_splits

    _write_omi_like(tmp_path / "omi", 12)
    chips = sorted(CHIPS.glob("omi_*.jpg"))
    extra = tmp_path / "extra.csv"
    extra.write_text("anchor,positive,negative\n" + "".join(f"{chips[i]},{chips[i + 1]},{chips[i + 2]}\n"
                                                         for i in range(4)))
    ratings = {"attributes": ["age", "hair", "skin"], "gender_matched_fraction": 0.0, "n_candidates": 300,
               "bootstrap": 50, "threshold": 0.9}
    data = {"kind": "omi", "root": str(tmp_path / "omi"), "test_fraction": 0.25, "val_fraction": 0,
            "ratings": ratings, "test_candidates": 200}
    plain = make_splits(config_from_dict({"data": data}).data)
    cfg = config_from_dict({"data": {**data, "extra": [str(extra)]}})
    mixed = make_splits(cfg.data)
    assert len(mixed.train) == len(plain.train) + 4
    assert [t.reference for t in mixed.test] == [t.reference for t in plain.test]
    assert mixed.notes["extra_triplets"] == {str(extra): 4}
    assert "extra.csv" in describe_data(cfg.data)
    assert config_from_dict(dataclasses.asdict(cfg)) == cfg  # as saved in a model's metadata
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "x.yaml").write_text("data:\n  extra: [runs/extra.csv]\n")
    assert load_config(tmp_path / "configs" / "x.yaml").data.extra == (str(tmp_path / "runs" / "extra.csv"),)
    with pytest.raises(PerFaceError, match="list of CSV file paths"):
        config_from_dict({"data": {"extra": "runs/extra.csv"}})
    with pytest.raises(PerFaceError, match="kind 'omi' only"):
        config_from_dict({"data": {"kind": "csv", "extra": ["runs/extra.csv"]}})


def test_avfs_judgments_load_with_their_image_folder(tmp_path):
    """kind avfs: the odd-one-out JSON names images by id, looked up under data.images (default: the JSON's
    folder); this used to fail with a TypeError (the loader was called without an image folder)."""
    import json

    from perface.metric.train import make_splits

    names = [p.name for p in sorted(CHIPS.glob("omi_*.jpg"))[:3]]
    trials = {"0": {"triplet_questions": [names, names], "odd_one_out_positions": [2, 2], "annotator_id": "x"}}
    (tmp_path / "ooo.json").write_text(json.dumps(trials))
    data = {"kind": "avfs", "root": str(tmp_path / "ooo.json"), "test_fraction": 0.0, "val_fraction": 0.0}
    (t,) = make_splits(config_from_dict({"data": {**data, "images": str(CHIPS)}}).data).train
    assert t.b.name == names[2] and t.votes_a == 2  # the odd one out is the negative, two judgments pooled
    from perface.datasets import DatasetError

    with pytest.warns(Warning), pytest.raises(DatasetError, match="no usable triplets"):  # none beside the JSON
        make_splits(config_from_dict({"data": data}).data)


def _omi_with_utk(tmp_path, n_triplets: int) -> tuple[dict, Path]:
    """A tiny OMI-like training config with an UTKFace-named label source of the same chips (ages 25 and 60)."""
    import shutil

    _write_omi_like(tmp_path / "omi", 12)
    utk = tmp_path / "utk"
    utk.mkdir()
    for i, chip in enumerate(sorted(CHIPS.glob("omi_*.jpg"))):  # UTKFace-style names: age, gender, race, date
        shutil.copy(chip, utk / f"{25 if i % 4 < 2 else 60}_{i % 2}_0_201701{i:04d}.jpg.chip.jpg")
    ratings = {"attributes": ["age", "hair", "skin"], "gender_matched_fraction": 0.0, "n_candidates": 300,
               "bootstrap": 50, "threshold": 0.9}
    raw = {"data": {"kind": "omi", "root": str(tmp_path / "omi"), "test_fraction": 0.25, "val_fraction": 0,
                    "ratings": ratings, "test_candidates": 200,
                    "labelled": [{"kind": "utkface", "root": str(utk), "train_fraction": 1.0,
                                  "n_triplets": n_triplets}]},
           "model": {"views": [0.25], "hidden": 16, "embed_dim": 8},
           "optim": {"epochs": 1, "batch_size": 8}, "cache_dir": str(tmp_path / "cache")}
    return raw, utk


def test_label_head_separates_its_labels_and_keeps_the_rating_columns(tmp_path):
    """The label columns are fitted on the labelled faces' training part; the MLP and rating columns stay as trained."""
    import torch

    from perface.datasets import in_training_part, load_utkface
    from perface.metric.model import load

    raw, utk = _omi_with_utk(tmp_path, 0)
    raw = {**raw, "attribute_head": {"enabled": True, "ridge": 1.0, "weight": 0.2},
           "label_head": {"enabled": True, "ridge": 1.0, "weight": 0.4}, "out": str(tmp_path / "with")}
    with_head = load(train(config_from_dict(raw), progress=False, log=lambda m: None).model_dir)
    raw_without = {**raw, "label_head": {"enabled": False}, "out": str(tmp_path / "without")}
    without = load(train(config_from_dict(raw_without), progress=False, log=lambda m: None).model_dir)
    assert with_head.config.attribute_outputs == 3 + 2 and without.config.attribute_outputs == 3
    w1, w0 = with_head.head.attribute.weight, without.head.attribute.weight
    assert torch.equal(w1[:3], w0) and torch.equal(with_head.head.mlp[1].weight, without.head.mlp[1].weight)
    faces = [f for f in load_utkface(utk) if in_training_part(f, 1.0)]
    emb = with_head.embed([str(f.path) for f in faces])
    pred = emb[:, 8 + 3 : 8 + 5]  # the label part, scaled by the embedding's norm
    male = np.array([f.gender == "male" for f in faces])
    young = np.array([f.young for f in faces])
    assert (pred[male, 0].min() > pred[~male, 0].max()) and (pred[young, 1].min() > pred[~young, 1].max())
    with pytest.raises(PerFaceError, match="attribute_head"):
        train(config_from_dict({**raw, "attribute_head": {"enabled": False}}), progress=False, log=lambda m: None)


def test_label_margin_applies_to_the_label_triplets_only(tmp_path):
    """label_margin equal to the margin trains the same weights; a wider one changes them and says on how many."""
    import torch

    from perface.metric.model import load

    raw, _ = _omi_with_utk(tmp_path, 40)
    weights, logs = {}, {}
    for m in (None, 0.1, 0.5):
        lines: list[str] = []
        cfg = config_from_dict({**raw, "loss": {"label_margin": m}, "out": str(tmp_path / f"run{m}")})
        weights[m] = load(train(cfg, progress=False, log=lines.append).model_dir).head.mlp[1].weight
        logs[m] = [s for s in lines if s.startswith("margin")]
    assert torch.equal(weights[None], weights[0.1]) and not torch.equal(weights[None], weights[0.5])
    assert logs[None] == [] and logs[0.5] == ["margin 0.5 on 40 label triplets, 0.1 on the rest"]
