"""How high can the Sec. 4.5 gender and age-group figures go with these features? Two ceilings for issue 4.

1. **A supervised read-out on UTKFace itself.** A ridge classifier trained on half of the UTKFace images (their
   gender and age-group labels) and tested on the other half, on the default model's features. Sec. 4.5 assigns a
   face to the group of 200 images at the lowest distance bound, without labels for training, so it should not
   beat a read-out that is trained for the task on 2,400 images of the same dataset.
2. **Sec. 4.5 inside the training domain.** The same protocol on the 800 One Million Impressions faces, with
   the raters' mean gender and age as labels, for the rating-space distance that the stand-in triplets are built
   from (what a perfect stand-in model would reproduce), the default model and dlib identity.

Writes the `group_ceilings` section of docs/benchmarks.md.
"""

from __future__ import annotations

import csv
import sys
import warnings
from pathlib import Path

import numpy as np

from perface.datasets import load_utkface
from perface.datasets.ratings import RatingTripletConfig, load_ratings, rating_space, split_faces
from perface.evaluation.measures import _intersection_index, make_groups
from perface.evaluation.protocols import bank_embeddings, baseline_embeddings
from perface.metric.features import build_feature_bank
from perface.metric.groups import _reduce
from perface.metric.model import load

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _common
from _common import REPO, shared_data, write_fragment  # noqa: E402

CACHE = str(REPO / ".cache" / "perface")
LAMBDAS = (1.0, 10.0, 100.0, 1000.0, 10000.0)
DRAWS = 20


def _ridge(x: np.ndarray, t: np.ndarray, lam: float) -> np.ndarray:
    return np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ t)


def readout_accuracy(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, float]:
    """Ridge classifier on +-1 targets, lambda picked on the last quarter of the training half; per-test hits."""
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    x = (x - mu) / sd
    t = np.where(y, 1.0, -1.0)
    fit, pick = train[: len(train) * 3 // 4], train[len(train) * 3 // 4 :]
    lam = max(LAMBDAS, key=lambda lam: float(((x[pick] @ _ridge(x[fit], t[fit], lam) > 0) == y[pick]).mean()))
    w = _ridge(x[train], t[train], lam)
    return (x[test] @ w > 0) == y[test], lam


def utkface_readout(model) -> str:
    faces = load_utkface(shared_data() / "utkface")
    bank = build_feature_bank(model, [str(f.path) for f in faces], cache_dir=CACHE, progress=True)
    faces = [f for f in faces if str(f.path) in bank.index]
    rows = np.array([bank.index[str(f.path)] for f in faces])
    male = np.array([f.gender == "male" for f in faces])
    young = np.array([f.young for f in faces])
    age = np.array([f.age for f in faces])
    feats = {
        "dlib identity descriptor (128-d)": baseline_embeddings(model, bank)["dlib identity (cosine)"][rows],
        "PerFace default embedding": bank_embeddings(model, bank)[rows],
        "all features under the head (both views, unflipped)": bank.pooled[rows, 0],
    }
    perm = np.random.default_rng(0).permutation(len(faces))
    train, test = perm[: len(faces) // 2], perm[len(faces) // 2 :]
    adult, child = age[test] >= 18, age[test] < 18
    lines = [
        f"**1. Supervised read-out on UTKFace.** {len(faces)} UTKFace images with a detected face, split at random "
        f"in two halves; a ridge classifier is trained on one ({len(train)} images) and tested on the other "
        f"({len(test)}: {int(adult.sum())} adults, {int(child.sum())} aged 0-17).",
        "",
        "| features | gender, all ages | gender, adults | gender, 0-17 | age group (< 40), all ages | "
        "age group, adults |",
        "|---|---|---|---|---|---|",
    ]
    for name, x in feats.items():
        g, _ = readout_accuracy(x, male, train, test)
        a, _ = readout_accuracy(x, young, train, test)
        lines.append(f"| {name} | {g.mean():.3f} | {g[adult].mean():.3f} | {g[child].mean():.3f} | {a.mean():.3f} | "
                     f"{a[adult].mean():.3f} |")
    return "\n".join(lines)


def _cos_distance(x: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return 1.0 - x @ x.T


def omi_groups(model) -> str:
    root = shared_data() / "omi"
    config = RatingTripletConfig()
    space = rating_space(load_ratings(root, attributes=config.needed_attributes), config)
    ids = list(space.face_ids)
    means = {r["stimulus"]: r for r in csv.DictReader((root / "attribute_means.csv").open())}
    gender = np.array([float(means[i]["gender"]) for i in ids])
    male, young = gender >= 50, np.array([float(means[i]["age"]) < 40 for i in ids])
    counts = np.bincount(_intersection_index(male, young), minlength=4)
    per_group = int(counts.min() * 0.6)
    paths = [str(root / "images" / f"{i}.jpg") for i in ids]
    bank = build_feature_bank(model, paths, cache_dir=CACHE, progress=True)
    pos = np.array([bank.index[p] for p in paths])
    coords = space.features()
    sq = (coords**2).sum(1)
    distances = {
        "rating space (Euclidean; defines the stand-in triplets)": np.sqrt(
            np.maximum(sq[:, None] + sq[None] - 2 * coords @ coords.T, 0)),
        "PerFace default (1 - cos)": _cos_distance(bank_embeddings(model, bank)[pos]),
        "dlib identity (1 - cos)": _cos_distance(baseline_embeddings(model, bank)["dlib identity (cosine)"][pos]),
    }
    test_ids = set(split_faces(ids, 0.2, 0)[1])
    masks = {"all": np.ones(len(ids), bool), "test faces": np.array([i in test_ids for i in ids]),
             "clear gender": np.abs(gender - 50) >= 15}

    labels = list(zip(male, young, strict=True))

    def run(d: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
        """Gender and age-group accuracy (mean over the draws): the group with the lower upper 95% bound wins."""
        acc_g, acc_a = [], []
        for seed in range(DRAWS):
            split = make_groups(labels, per_group=per_group, n_queries_per_group=None, seed=seed)
            q = split.queries[mask[split.queries]]
            bound = {k: _reduce(d[np.ix_(q, split.groups[k])], "ci_upper")
                     for k in ("male", "female", "young", "older")}
            acc_g.append(np.mean((bound["male"] < bound["female"]) == male[q]))
            acc_a.append(np.mean((bound["young"] < bound["older"]) == young[q]))
        return float(np.mean(acc_g)), float(np.mean(acc_a))

    lines = [
        f"**2. Sec. 4.5 inside the training domain.** The {len(ids)} OMI faces, labelled by their raters' mean "
        f"gender (>= 50: male) and age (< 40: young); cells young male / young female / older male / older female "
        f"hold {' / '.join(str(int(c)) for c in counts)} faces, so the groups have {per_group} faces per cell "
        f"(not 100) and every other face is a query; mean over {DRAWS} draws. The model was trained on triplets "
        f"among 640 of these faces (never on group labels); 'test faces' keeps only queries among the 160 held-out "
        f"faces; 'clear gender' only queries whose raters' mean gender is at least 15 points from the midpoint "
        f"({int(masks['clear gender'].sum())} faces).",
        "",
        "| distance | gender: all queries | test faces | clear gender | age group: all queries | test faces |",
        "|---|---|---|---|---|---|",
    ]
    for name, d in distances.items():
        r = {k: run(d, m) for k, m in masks.items()}
        lines.append(f"| {name} | {r['all'][0]:.3f} | {r['test faces'][0]:.3f} | {r['clear gender'][0]:.3f} | "
                     f"{r['all'][1]:.3f} | {r['test faces'][1]:.3f} |")
    return "\n".join(lines)


def main() -> None:
    warnings.filterwarnings("ignore")
    model = load("default")
    body = "\n\n".join([utkface_readout(model), omi_groups(model)])
    body += (
        "\n\nWhat this says (rerun 2026-12-06 with the dlib + FaceRes default): on UTKFace with all ages, even a "
        "classifier trained for gender on 2,400 UTKFace images reaches about 0.88 on the frozen features, because "
        "of the children; issue 18's 0.965 is above that ceiling. On adults the read-out reaches about 0.97 for "
        "gender and 0.86 for the age group: the adults' targets (0.965 and 0.85) sit just under what a classifier "
        "*trained for that one task* reads from these features, while Sec. 4.5 has to reach both with one "
        "distance, untrained for either, and group means. The PerFace embedding row is not held out: the default "
        "trains on label triplets from 30% of UTKFace's files, some of them in the test half. Inside the training "
        "domain, on faces whose gender the raters agree on, the default model groups gender as well as the "
        "rating-space distance it is trained to reproduce."
    )
    write_fragment("group_ceilings", "Ceilings for the Sec. 4.5 figures (issue 4)", body)


if __name__ == "__main__":
    main()
