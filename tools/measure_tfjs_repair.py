"""Measure the mobilefacenet repair: identity-verification ROC AUC on CelebA, raw vs repaired graph.

Reads ``../shared/data/celeba`` (``labels.csv`` with ``image,identity``; ``images/``), draws seeded
same-identity and different-identity pairs, detects each face (perface's detector, 5 landmarks), aligns it
to the ArcFace 112x112 five-point template and embeds it with the shipped ``mobilefacenet`` graph in four
variants: as shipped (raw), each of the two repairs alone, and both (the default). The score of a pair is
the cosine similarity of the two embeddings; the AUC is that of same-vs-different.

    python tools/measure_tfjs_repair.py [--data ../shared/data/celeba] [--pairs 300] [--seed 0]

Prints one line per variant with the MobileFaceNet_TF input range -1..1, and one for the repaired graph
with 0..1 input (as Human feeds it); ``--json PATH`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from perface.backbones.tfjs import TfjsGraphModule, read_graph_model, shipped_model_dir  # noqa: E402
from perface.backbones.tfjs_repairs import apply_repairs  # noqa: E402

try:  # the detector moved into perface.face; older checkouts have it at the top level
    from perface.face.detect import detect
except ImportError:  # pragma: no cover
    from perface.detect import detect  # type: ignore[no-redef]

#: insightface's 112x112 five-point template (left eye, right eye, nose, left and right mouth corner).
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)

VARIANTS: dict[str, list[str]] = {
    "raw (as shipped)": [],
    "slope sign only": ["flip_prelu_slope_sign"],
    "relu split only": ["split_fused_relu_before_prelu"],
    "both repairs": ["split_fused_relu_before_prelu", "flip_prelu_slope_sign"],
}
RANGES: dict[str, tuple[float, float]] = {"-1..1": (1 / 128, -127.5 / 128), "0..1": (1 / 255, 0.0)}
#: (variant, input range) pairs measured.
RUNS: list[tuple[str, str]] = [*((v, "-1..1") for v in VARIANTS), ("both repairs", "0..1")]


def align_112(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Similarity-warp the face so its 5 landmarks land on the ArcFace template."""
    mat, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), ARCFACE_112, method=cv2.LMEDS)
    return cv2.warpAffine(image, mat, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with midranks for ties)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = labels.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def draw_pairs(by_id: dict[str, list[str]], n: int, rng: np.random.Generator) -> list[tuple[str, str, int]]:
    """``n`` same-identity and ``n`` different-identity pairs of distinct images, without repeats."""
    ids = sorted(k for k, v in by_id.items() if len(v) >= 2)
    pairs: set[tuple[str, str, int]] = set()
    while sum(p[2] for p in pairs) < n:
        imgs = by_id[ids[rng.integers(len(ids))]]
        a, b = sorted(rng.choice(len(imgs), 2, replace=False))
        pairs.add((imgs[a], imgs[b], 1))
    all_ids = sorted(by_id)
    while len(pairs) < 2 * n:
        i, j = rng.choice(len(all_ids), 2, replace=False)
        a = by_id[all_ids[i]][rng.integers(len(by_id[all_ids[i]]))]
        b = by_id[all_ids[j]][rng.integers(len(by_id[all_ids[j]]))]
        pairs.add((min(a, b), max(a, b), 0))
    return sorted(pairs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "celeba")
    ap.add_argument("--pairs", type=int, default=300, help="same pairs and different pairs, each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()

    by_id: dict[str, list[str]] = {}
    with (args.data / "labels.csv").open() as f:
        for row in csv.DictReader(f):
            by_id.setdefault(row["identity"], []).append(row["image"])
    pairs = draw_pairs(by_id, args.pairs, np.random.default_rng(args.seed))
    crops: dict[str, np.ndarray] = {}
    for name in sorted({p[0] for p in pairs} | {p[1] for p in pairs}):
        image = np.asarray(Image.open(args.data / "images" / name).convert("RGB"))
        faces = detect(image)
        if faces:
            crops[name] = align_112(image, faces[0].landmarks)
    kept = [p for p in pairs if p[0] in crops and p[1] in crops]
    names = sorted(crops)
    index = {n: i for i, n in enumerate(names)}
    chips = np.stack([crops[n] for n in names])
    labels = np.array([p[2] for p in kept])
    print(f"{len(names)} faces aligned, {labels.sum()} same + {(1 - labels).sum()} different pairs kept "
          f"({len(pairs) - len(kept)} dropped: no face found), {time.time() - t0:.0f} s")

    folder = shipped_model_dir("mobilefacenet")
    graph = read_graph_model(folder / "model.json", folder / "weights.safetensors")
    results: dict[str, dict[str, float]] = {}
    for variant, rng_name in RUNS:
        model = TfjsGraphModule(apply_repairs(graph, VARIANTS[variant])).eval()
        scale, offset = RANGES[rng_name]
        with torch.inference_mode():
            emb = torch.cat([model(torch.from_numpy(chips[i : i + 64]).float() * scale + offset)
                             for i in range(0, len(chips), 64)])
        emb = torch.nn.functional.normalize(emb, dim=1).numpy()
        sims = np.array([emb[index[a]] @ emb[index[b]] for a, b, _ in kept])
        results.setdefault(variant, {})[rng_name] = auc = roc_auc(sims, labels)
        print(f"{variant:18s} input {rng_name:6s} ROC AUC {auc:.4f}")
    print(f"done in {time.time() - t0:.0f} s")
    if args.json:
        out = {"pairs_same": int(labels.sum()), "pairs_different": int((1 - labels).sum()), "seed": args.seed,
               "auc": results}
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
