"""A View From Somewhere (AVFS; Andrews, Joniak & Xiang, ICLR 2023): odd-one-out face judgments.

Format, as documented in ``docs/AVFS_README.md`` of ``SonyResearch/a_view_from_somewhere`` and
read by its ``avfs/dataset/data.py`` (the Zenodo release ``avfs-dataset-v1``):

* ``ooo_train_val.json``, ``ooo_test_same_stimuli.json`` and ``ooo_test_novel_stimuli.json`` are
  objects keyed by trial index (``"0"``, ``"1"``, ...). Each trial holds ``triplet_questions``
  (a list of ``[int, int, int]`` FFHQ image ids), ``odd_one_out_positions`` (the index 0..2 of the
  face chosen as the odd one out, per question), ``annotator_id`` (a string) and, in the
  train/validation file only, ``split`` (1 = train, 0 = validation, per question).
* The release ships no images; they are FFHQ images, which the AVFS code stores as
  ``ffhq160x160/<id rounded down to 1000, 5 digits>/<id, 5 digits>.png``.

Assumptions made here: a JSON list of trials is accepted as well as an object; image ids may also
be file names (strings), which are looked up relative to the image folder; an integer id is looked
up as ``<id:05d>.png``, ``<bucket:05d>/<id:05d>.png``, ``<id>.png`` and the same with ``.jpg``.

Conversion: the two faces that are not the odd one out are the similar pair. Judgments of the same
three images (in any order) are pooled. The face most often chosen as the odd one out becomes ``b``
(the negative; on a tie, the first in question order); the other two, in the order of the
question's first occurrence, become ``reference`` and ``a`` (the positive). ``votes_a`` counts the
judgments that picked ``b`` as odd (``a`` closer to the reference) and ``votes_b`` those that
picked ``a`` as odd; judgments that picked the reference as odd say nothing about ``a`` versus
``b`` and are not counted.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from .errors import DatasetError, DatasetWarning, summarise
from .triplets import Triplet, TripletSet

__all__ = ["avfs_image_path", "load_avfs"]

ImageId = int | str


def avfs_image_path(image_root: str | os.PathLike[str], image_id: ImageId) -> Path | None:
    """Find the image file of an AVFS image id under `image_root`, or None if there is none."""
    root = Path(image_root)
    if isinstance(image_id, str) and not image_id.isdigit():
        path = root / image_id
        return path if path.is_file() else None
    n = int(image_id)
    names = [f"{n:05d}", f"{n - n % 1000:05d}/{n:05d}", f"{n}"]
    for stem in names:
        for ext in (".png", ".jpg"):
            path = root / f"{stem}{ext}"
            if path.is_file():
                return path
    return None


def _fail(path: Path, where: str, problem: str) -> DatasetError:
    return DatasetError(f"{path}, {where}: {problem}")


def _read_trials(path: Path) -> list[tuple[str, dict[str, Any]]]:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from e
    if isinstance(data, dict):
        trials = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, list):
        trials = [(str(i), v) for i, v in enumerate(data)]
    else:
        raise DatasetError(f"{path}: expected an object of trials, got {type(data).__name__}")
    if not trials:
        raise DatasetError(f"{path}: no trials")
    return trials


def _check_id(value: Any) -> ImageId:
    if isinstance(value, bool) or not isinstance(value, int | str) or value in ("", None):
        raise TypeError(repr(value))
    return value


def load_avfs(
    json_path: str | os.PathLike[str],
    image_root: str | os.PathLike[str],
    *,
    split: Literal["train", "val"] | None = None,
    image_path: Callable[[ImageId], Path | None] | None = None,
    name: str | None = None,
) -> TripletSet:
    """Load an AVFS odd-one-out JSON file into a :class:`TripletSet` (see the module doc).

    `split` keeps only the train (``split`` = 1) or validation (0) judgments of
    ``ooo_train_val.json``. `image_path` maps an image id to a file (default:
    :func:`avfs_image_path` under `image_root`). Triplets with a missing image are dropped with one
    warning.
    """
    path = Path(json_path)
    if split not in (None, "train", "val"):
        raise ValueError(f"split must be None, 'train' or 'val', got {split!r}")
    resolve = image_path or (lambda i: avfs_image_path(image_root, i))
    wanted = {None: None, "train": 1, "val": 0}[split]

    # key -> (first-seen order, {image id: times chosen as odd one out})
    pooled: dict[frozenset[ImageId], tuple[tuple[ImageId, ...], dict[ImageId, int]]] = {}
    for key, trial in _read_trials(path):
        where = f"trial {key}"
        if not isinstance(trial, dict):
            raise _fail(path, where, "expected an object")
        for field in ("triplet_questions", "odd_one_out_positions"):
            if not isinstance(trial.get(field), list):
                raise _fail(path, where, f"missing or non-list {field!r}")
        questions, positions = trial["triplet_questions"], trial["odd_one_out_positions"]
        splits = trial.get("split")
        if len(positions) != len(questions):
            raise _fail(path, where, f"{len(questions)} questions but {len(positions)} odd_one_out_positions")
        if wanted is not None:
            if not isinstance(splits, list) or len(splits) != len(questions):
                raise _fail(
                    path, where, f"split={split!r} requested but 'split' is missing or has the wrong length"
                )
            if any(s not in (0, 1) for s in splits):
                raise _fail(path, where, "'split' values must be 0 or 1")
        for q, (question, pos) in enumerate(zip(questions, positions, strict=True)):
            if wanted is not None and splits[q] != wanted:
                continue
            try:
                ids = tuple(_check_id(v) for v in question)
            except TypeError as e:
                raise _fail(path, f"{where}, question {q}", f"bad image id {e}") from None
            if len(ids) != 3 or len(set(ids)) != 3:
                raise _fail(
                    path, f"{where}, question {q}", f"expected 3 distinct image ids, got {question!r}"
                )
            if isinstance(pos, bool) or pos not in (0, 1, 2):
                raise _fail(
                    path, f"{where}, question {q}", f"odd_one_out_position must be 0, 1 or 2, got {pos!r}"
                )
            order, counts = pooled.setdefault(frozenset(ids), (ids, dict.fromkeys(ids, 0)))
            counts[ids[pos]] += 1

    triplets: list[Triplet] = []
    missing: list[str] = []
    for order, counts in pooled.values():
        odd = max(order, key=lambda i: counts[i])  # first in question order on ties
        ref, pos_id = (i for i in order if i != odd)
        files = [resolve(i) for i in (ref, pos_id, odd)]
        tid = "avfs:" + "-".join(str(i) for i in order)
        if any(f is None for f in files):
            missing.append(tid)
            continue
        triplets.append(
            Triplet(
                id=tid,
                reference=files[0],
                a=files[1],
                b=files[2],
                votes_a=counts[odd],
                votes_b=counts[pos_id],
            )
        )
    if missing:
        warnings.warn(
            f"AVFS ({path}): dropped {len(missing)} of {len(pooled)} triplets with an image missing under "
            f"{image_root}: {summarise(missing)}",
            DatasetWarning,
            stacklevel=2,
        )
    if not triplets:
        raise DatasetError(f"{path}: no usable triplets (split={split!r}, images under {image_root})")
    return TripletSet(triplets, name or f"AVFS-{path.stem}" + (f"-{split}" if split else ""))
