"""Triplets derived from real photos' labels (UTKFace age and gender, CelebA's Male and Young): a real-face signal.

An anchor, a positive that shares the anchor's gender and age group (the paper's Sec. 4.5 cells: young = under
40; with UTKFace's ages also within ``age_window`` years where such a face exists), and a negative that differs
in gender, in age group, or in both (a third each). Nobody judged these triplets: they say only that faces of
the same gender and age group should sit closer than faces that differ, which is what step 1 of the anonymizer
and the Sec. 4.5 figures need. Only the training part of the fixed split of
:func:`perface.datasets.split_labelled` is drawn from, so the faces of every reported figure stay out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .errors import DatasetError
from .labelled import LabelledFace, load_celeba, load_utkface, split_labelled
from .triplets import Triplet, TripletSet

__all__ = ["LabelTripletConfig", "label_triplets", "labelled_training_faces"]


@dataclass(frozen=True)
class LabelTripletConfig:
    """One labelled source of training triplets; ``n_triplets`` sets its weight in the mix."""

    kind: Literal["utkface", "celeba"] = "utkface"
    root: str = "../shared/data/utkface/images"  # UTKFace: the image folder; CelebA: the folder with labels.csv
    train_fraction: float = 0.3  # share of files (UTKFace) or people (CelebA) that training may use
    n_triplets: int = 10_000
    min_age: int | None = None  # UTKFace: draw only from faces this old or older
    age_window: int | None = 10  # UTKFace: the positive is also within this many years of the anchor's age
    seed: int = 0


def labelled_training_faces(cfg: LabelTripletConfig) -> list[LabelledFace]:
    """The faces of a labelled source that training may use (its training part, and old enough)."""
    import warnings

    from .errors import DatasetWarning

    with warnings.catch_warnings():  # malformed UTKFace names were reported where the data is evaluated
        warnings.simplefilter("ignore", DatasetWarning)
        faces = load_utkface(cfg.root) if cfg.kind == "utkface" else load_celeba(cfg.root)
    train, _ = split_labelled(faces, cfg.train_fraction)
    if cfg.min_age is not None:
        train = [f for f in train if f.age is None or f.age >= cfg.min_age]
    return train


def label_triplets(cfg: LabelTripletConfig, faces: list[LabelledFace] | None = None,
                   exclude: set[str] | None = None) -> TripletSet:
    """``n_triplets`` seeded (anchor, same gender and age group, differing face) triplets from the training part.

    ``exclude``: image paths (as strings) to leave out, e.g. those without a detectable face."""
    faces = labelled_training_faces(cfg) if faces is None else faces
    if exclude:
        faces = [f for f in faces if str(f.path) not in exclude]
    cell = np.array([2 * (f.gender == "female") + (not f.young) for f in faces])
    pools = [np.flatnonzero(cell == c) for c in range(4)]
    if any(len(p) < 2 for p in pools):
        raise DatasetError(f"{cfg.root}: each gender x age-group cell needs 2 or more training faces, got "
                           f"{[len(p) for p in pools]}")
    age = np.array([-1 if f.age is None else f.age for f in faces])
    rng = np.random.default_rng(cfg.seed)
    out = []
    for k in range(cfg.n_triplets):
        a = int(rng.integers(len(faces)))
        c = int(cell[a])
        near = pools[c][pools[c] != a]
        if cfg.age_window is not None and age[a] >= 0:
            close = near[np.abs(age[near] - age[a]) <= cfg.age_window]
            near = close if len(close) else near
        p = int(rng.choice(near))
        other = c ^ int(rng.integers(1, 4))  # flip gender (2), age group (1) or both (3)
        n = int(rng.choice(pools[other]))
        out.append(Triplet(f"{cfg.kind}-{cfg.seed}-{k}", faces[a].path, faces[p].path, faces[n].path, 1, 0))
    return TripletSet(out, f"{cfg.kind} label triplets")


def resolve_root(cfg: LabelTripletConfig, base: str | os.PathLike[str]) -> LabelTripletConfig:
    """The config with a relative ``root`` taken relative to ``base``."""
    import dataclasses

    root = cfg.root if os.path.isabs(cfg.root) else str((Path(base) / cfg.root).resolve())
    return dataclasses.replace(cfg, root=root)
