"""perface.evaluation.protocols: a model trained on a dataset's labels is scored on that dataset's held-out part."""

from __future__ import annotations

import dataclasses

from perface.datasets import LabelledFace, LabelTripletConfig, in_training_part
from perface.evaluation.protocols import _labelled_sources
from perface.metric.train import config_from_dict


def test_the_labelled_sources_a_model_trained_on_come_from_its_saved_config():
    src = LabelTripletConfig(kind="utkface", root="/data/utk", train_fraction=0.3, n_triplets=0)
    cfg = config_from_dict({})
    meta = {"config": dataclasses.asdict(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data,
                                                                                           labelled=(src,))))}
    assert _labelled_sources(meta) == [src]
    assert _labelled_sources({"config": dataclasses.asdict(cfg)}) == [] and _labelled_sources({}) == []
    faces = [LabelledFace(path=f"/data/utk/{i}_0_0_20170101{i:04d}.jpg", gender="male", age=30, young=True)
             for i in range(200)]
    held = [f for f in faces if not in_training_part(f, src.train_fraction)]
    assert 100 < len(held) < 180  # about 70% held out, decided by the file name alone


def _simceleba_folder(root, chips) -> None:
    """Four SimCelebA-layout triplets: C a face, A its mirror image, B another face; three votes each (one split)."""
    from PIL import Image, ImageOps

    root.mkdir()
    rows = ["tripletId,ans1,ans2,ans3"]
    for i in range(4):
        c = Image.open(chips[i]).convert("RGB")
        c.save(root / f"t{i:04d}_c.jpg", quality=95)
        ImageOps.mirror(c).save(root / f"t{i:04d}_a.jpg", quality=95)
        Image.open(chips[i + 4]).convert("RGB").save(root / f"t{i:04d}_b.jpg", quality=95)
        rows.append(f"t{i:04d},a,a,{'b' if i == 3 else 'a'}")
    (root / "triplet_answers.csv").write_bytes(("\r\n".join(rows) + "\r\n").encode())


def test_external_triplet_sets_are_scored_as_d1_and_d2_with_the_baselines(tmp_path):
    """`perface evaluate --triplets-from`: a SimCelebA-layout folder is scored on D1 and D2, a CSV as one set."""
    from pathlib import Path

    from typer.testing import CliRunner

    from perface.cli import app
    from perface.evaluation.protocols import run_evaluation

    chips = sorted((Path(__file__).parents[1] / "data" / "chips").glob("omi_*.jpg"))[:8]
    _simceleba_folder(tmp_path / "sim", chips)
    res = run_evaluation("default", triplets_from=tmp_path / "sim", cache_dir=tmp_path / "cache", log=lambda m: None)
    rows = {(r["method"], r["subset"]): r for r in res.to_dict()["triplets"]["rows"]}
    mine = rows[("PerFace (this model)", "D1")]
    assert mine["n"] == 4 and mine["accuracy"] == 1.0  # a face's mirror image is nearer than another face
    assert rows[("PerFace (this model)", "D2")]["n"] == 3  # the 2-of-3 triplet is D1 only
    assert ("dlib identity (cosine)", "D2") in rows and "sim" in res.notes["split"]
    (tmp_path / "t.csv").write_text("anchor,positive,negative\n" + "".join(
        f"{tmp_path / 'sim' / f't{i:04d}_c.jpg'},{tmp_path / 'sim' / f't{i:04d}_a.jpg'},"
        f"{tmp_path / 'sim' / f't{i:04d}_b.jpg'}\n" for i in range(4)))
    out = CliRunner().invoke(app, ["evaluate", "--triplets-from", str(tmp_path / "t.csv"),
                                   "--cache-dir", str(tmp_path / "cache")])
    assert out.exit_code == 0, out.output
    assert "PerFace (this model)" in out.stdout and "1.000" in out.stdout and "(triplets from " in out.stdout
    missing = CliRunner().invoke(app, ["evaluate", "--triplets-from", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "triplet set not found" in missing.stderr
    not_a_set = CliRunner().invoke(app, ["evaluate", "--triplets-from", str(tmp_path / "cache")])
    assert not_a_set.exit_code == 2 and "no t####_{a,b,c}.jpg images" in not_a_set.stderr.strip().splitlines()[-1]
