"""perface.train: config parsing, and a tiny end-to-end run on CSV triplets that must learn them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from perface.io import PerFaceError
from perface.train import config_from_dict, load_config, train

CHIPS = Path(__file__).parent / "data" / "chips"


def test_unknown_keys_are_rejected():
    with pytest.raises(PerFaceError, match="unknown key"):
        config_from_dict({"optim": {"learning_rate": 0.1}})
    with pytest.raises(PerFaceError, match="unknown key"):
        config_from_dict({"epochz": 3})


def test_default_config_file_parses():
    cfg = load_config(Path(__file__).parents[1] / "configs" / "default.yaml")
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
