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
    # Share of triplets whose positive shares only the anchor's gender (the other age group) and whose negative only
    # its age group: gender then counts for more than the age group, as in grouping by gender across ages.
    gender_first: float = 0.0
    gender_first_window: int | None = None  # UTKFace: ...with its positive and negative this many years from the anchor
    balanced: bool = False  # anchors drawn evenly from the four gender x age-group cells (else evenly from the faces)
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


def _within(pool: np.ndarray, age: np.ndarray, anchor_age: int, window: int | None) -> np.ndarray:
    """The faces of ``pool`` within ``window`` years of the anchor, or the whole pool where none is (or no age)."""
    if window is None or anchor_age < 0:
        return pool
    close = pool[np.abs(age[pool] - anchor_age) <= window]
    return close if len(close) else pool


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
        if cfg.balanced:
            c = int(rng.integers(4))
            a = int(rng.choice(pools[c]))
        else:
            a = int(rng.integers(len(faces)))
            c = int(cell[a])
        if cfg.gender_first > 0 and rng.random() < cfg.gender_first:  # (no draw at 0: the default set is unchanged)
            p = int(rng.choice(_within(pools[c ^ 1], age, age[a], cfg.gender_first_window)))
            n = int(rng.choice(_within(pools[c ^ 2], age, age[a], cfg.gender_first_window)))
        else:
            p = int(rng.choice(_within(pools[c][pools[c] != a], age, age[a], cfg.age_window)))
            other = c ^ int(rng.integers(1, 4))  # flip gender (2), age group (1) or both (3)
            n = int(rng.choice(pools[other]))
        out.append(Triplet(f"{cfg.kind}-{cfg.seed}-{k}", faces[a].path, faces[p].path, faces[n].path, 1, 0))
    return TripletSet(out, f"{cfg.kind} label triplets")


def resolve_root(cfg: LabelTripletConfig, base: str | os.PathLike[str]) -> LabelTripletConfig:
    """The config with a relative ``root`` taken relative to ``base``."""
    import dataclasses

    root = cfg.root if os.path.isabs(cfg.root) else str((Path(base) / cfg.root).resolve())
    return dataclasses.replace(cfg, root=root)
