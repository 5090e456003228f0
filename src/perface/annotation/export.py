"""Export a project in the SimCelebA release layout, which ``perface train`` reads as it is.

Written: ``t####_{a,b,c}.jpg`` (c the reference), ``triplet_answers.csv`` (``tripletId,ans1,ans2,ans3``,
CRLF, valid votes only: flagged annotators are left out), ``triplet_identities.csv`` (``tripletId,target,
source_a,source_b,source_c``, which the SimCelebA reader picks up for the paper's identity splits),
``votes.csv`` (every vote, pseudonymous annotator ids, response times, valid or not), ``annotators.csv``
(QC per annotator, no names or tokens), ``train.yaml`` (a ready ``perface train --config`` that fine-tunes the
shipped model) and ``train-identity.yaml`` (a head trained from dlib's identity metric instead).
"""

from __future__ import annotations

import csv
import os
import shutil
import zipfile
from pathlib import Path

from sqlalchemy import select

from perface.face.io import InputError, PerFaceError

from .db import TripletRow, Vote, transaction
from .project import Project
from .quality import summarize, valid_votes

__all__ = ["ExportReport", "export_project", "write_train_yaml", "zip_folder"]

_DATA_YAML = """\
data:
  kind: simceleba
  root: .
  subset: {subset}        # d1: every triplet by majority; d2: unanimous triplets only
  split: {split}         # iii: validation and test triplets have source groups never seen in training, so the
                       # epoch is chosen for new faces (random triplets share faces with training and reward
                       # memorising them); or random / the paper's i / ii (triplet_identities.csv)
  test_fraction: 0.2
  val_fraction: 0.2    # validation triplets choose the epoch; epoch 0 (the model before training) competes
  seed: 0
"""

TRAIN_YAML = """\
# perface train --config {name}/train.yaml   (paths are relative to this folder)
# Fine-tunes the shipped PerFace model on these judgments, as the paper fine-tunes a trained network. In the
# simulated end-to-end run (docs/annotation.md) this scored above training from the identity metric
# (train-identity.yaml), which a few hundred triplets could not move beyond dlib's identity cosine.
""" + _DATA_YAML + """\
init_from: default     # the shipped model: its architecture, standardisation and weights; epoch 0 is that model
optim:
  lr: 0.01             # the paper's
  epochs: 30
  patience: 10
  keep: best           # epoch 0 (the shipped model itself) is a candidate
  cosine_schedule: false
out: run
cache_dir: .cache
"""

TRAIN_IDENTITY_YAML = """\
# perface train --config {name}/train-identity.yaml   (paths are relative to this folder)
# Trains a head from dlib's identity metric rather than from the shipped model: for judgments far from the
# shipped model's (One Million Impressions ratings of synthetic faces), given enough distinct sources.
""" + _DATA_YAML + """\
model:
  backbone: dlib-resnet
  train_from: null     # frozen backbone: features are cached, training takes minutes on a CPU
  identity_dim: 128    # identity-residual head: starts as dlib's identity metric (a few hundred triplets
                       # cannot train a metric from scratch) and moves away only as far as validation supports
optim:
  lr: 0.05             # chosen on validation triplets of a simulated export (0.01 barely moves the mix)
  epochs: 60
  patience: 20
  keep: best           # epoch 0 (the identity metric itself) is a candidate
  cosine_schedule: false
out: run-identity
cache_dir: .cache
"""


class ExportReport(dict):
    """Counts of what was exported (a dict: triplets, answers, left_out, flagged, folder)."""


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(header)
        w.writerows(rows)


def export_project(project: Project, out: str | os.PathLike[str], *, min_votes: int | None = None,
                   overwrite: bool = False, subset: str = "d2", split: str = "iii") -> ExportReport:
    """Write the release into `out`; only real triplets with at least `min_votes` valid votes (default K)."""
    out = Path(out)
    k = project.settings.votes_per_triplet
    min_votes = k if min_votes is None else min_votes
    if min_votes < 1:
        raise PerFaceError(f"min votes must be >= 1, got {min_votes}")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(out, "output folder exists and is not empty (use --overwrite)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    with transaction(project.engine, read_only=True) as s:
        valid = valid_votes(s, project.settings)
        triplets = s.scalars(select(TripletRow).where(TripletRow.kind == "real").order_by(TripletRow.code)).all()
        kind = {t.id: t.kind for t in s.scalars(select(TripletRow))}
        votes = s.execute(select(Vote.annotator_id, Vote.triplet_id, Vote.answer, Vote.rt_ms, Vote.created)
                          .order_by(Vote.created, Vote.id)).all()
        codes = {t.id: t.code for t in s.scalars(select(TripletRow))}
    summary = summarize(project)
    flagged = {a.id for a in summary.annotators if a.flagged}
    kept = [t for t in triplets if len(valid.get(t.id, [])) >= min_votes]
    if not kept:
        raise PerFaceError(f"{project.root}: no triplet has {min_votes} valid votes yet; nothing to export")
    n_ans = max(len(valid[t.id]) for t in kept)
    answers, identities = [], []
    for t in kept:
        for side in "abc":
            shutil.copyfile(project.image_path(t.code, side), out / f"{t.code}_{side}.jpg")
        got = [ans for _, ans in valid[t.id]]
        answers.append([t.code, *got, *[""] * (n_ans - len(got))])
        identities.append([t.code, t.target, t.source_a, t.source_b, t.source_c])
    _write_csv(out / "triplet_answers.csv", ["tripletId", *[f"ans{i + 1}" for i in range(n_ans)]], answers)
    _write_csv(out / "triplet_identities.csv", ["tripletId", "target", "source_a", "source_b", "source_c"],
               identities)
    _write_csv(out / "votes.csv", ["annotator", "tripletId", "kind", "answer", "rt_ms", "unix_time", "valid"],
               [[f"annotator{a:03d}", codes[t], kind[t], ans, rt, f"{ts:.3f}",
                 int(a not in flagged and kind[t] == "real")] for a, t, ans, rt, ts in votes])
    _write_csv(out / "annotators.csv", ["annotator", "votes", "catch_correct", "catch_answered", "median_rt_ms",
                                        "flagged"],
               [[f"annotator{a.id:03d}", a.votes, a.catch_correct, a.catch_answered,
                 "" if a.median_rt_ms is None else f"{a.median_rt_ms:.0f}", int(a.flagged)]
                for a in summary.annotators])
    write_train_yaml(out, subset=subset, split=split)
    return ExportReport(triplets=len(kept), answers=sum(len(valid[t.id]) for t in kept),
                        left_out=len(triplets) - len(kept), flagged=len(flagged), folder=str(out))


def write_train_yaml(out: Path, *, subset: str = "d2", split: str = "iii") -> Path:
    """Write (or rewrite) ``out/train.yaml`` (fine-tune the shipped model) and ``out/train-identity.yaml`` (a head
    from the identity metric), ready ``perface train --config`` files for an export in `out`; returns the first."""
    out = Path(out)
    for name, template in (("train-identity.yaml", TRAIN_IDENTITY_YAML), ("train.yaml", TRAIN_YAML)):
        (out / name).write_text(template.format(name=out.name, subset=subset, split=split))
    return out / "train.yaml"


def zip_folder(folder: Path, zip_path: Path) -> Path:
    """A stored (uncompressed: the images are JPEG) zip of every file in `folder`."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(folder).as_posix())
    return zip_path
