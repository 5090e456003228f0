"""Issue 18, item 3: a SimCelebA-like stand-in, built as the paper built SimCelebA.

Each triplet is three face swaps onto one real target photo (so hair, face outline and background are shared and
only the inner face can decide), with One Million Impressions faces as the sources. "Three people answer" is
simulated by three rater resamples: each answer compares the *sources'* rating-space distances (reliability-
weighted, z-scored OMI attribute means) in one bootstrap resample of the raters, without ``long-haired``,
``hair-color`` and ``skin-color``, which the swap takes from the target. D1 = the majority, D2 = unanimous, as in
the paper; nobody looked at the swapped images, so this is a stand-in, not human data.

Splits are kept honest:

* ``train``: targets from UTKFace's training part (the same 30% that the label triplets use; adults), sources from
  the shipped model's 640 OMI training faces.
* ``test``: targets from CelebA (one photo per identity; nothing is trained on CelebA), sources from the 160 OMI
  faces the shipped model holds out.

Every target gets ``per_target`` same-gender sources (raters' gender at least 15 points from the midpoint) and
each of them is swapped onto it once with the project's swapper (``ClassicSwapper``, the anonymizer's), cropped as
``perface annotate create`` crops (224 px, 1.5x the face box). All ordered (reference, {A, B}) choices among one
target's swaps are triplets: per_target * C(per_target - 1, 2) of them, sharing the per_target images.

    python benchmarks/studies/swapped_standin.py build train 300 6
    python benchmarks/studies/swapped_standin.py build test 150 6
    python benchmarks/studies/swapped_standin.py score            # every recognizer and the shipped model, test
    python benchmarks/studies/swapped_standin.py train NAME N     # shipped recipe + N swapped training triplets

Outputs go to runs/swapped_standin/ (not shipped: the images derive from UTKFace and CelebA photos).
"""

from __future__ import annotations

import csv
import json
import random
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))
OUT = REPO / "runs" / "swapped_standin"
SHARED = REPO.parent / "shared" / "data"
SWAP_FREE = ("long-haired", "hair-color", "skin-color")  # the swap keeps the target's


def _omi_split() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training face ids, held-out face ids) of the shipped model's OMI split."""
    from perface import datasets as ds
    from perface.metric.train import _rating_config, load_config

    cfg = load_config(REPO / "configs" / "default.yaml").data
    rcfg = _rating_config(cfg)
    ratings = ds.load_ratings(SHARED / "omi", rcfg.rating_types, rcfg.needed_attributes)
    rest, test = ds.split_faces(list(ratings.face_ids), cfg.test_fraction, seed=cfg.seed)
    return tuple(rest), tuple(test)


def _rating_config():
    from perface import datasets as ds

    return ds.RatingTripletConfig(
        attributes=tuple(a for a in ds.APPEARANCE_ATTRIBUTES if a not in SWAP_FREE), gender_matched_fraction=0.0)


def _targets(split: str, n: int, seed: int) -> list[tuple[list[Path], str]]:
    """``n`` gender-balanced targets, each (candidate photos, gender): one UTKFace photo, or the photos of one
    CelebA identity in a seeded order (the first with a face large enough to swap is used)."""
    from perface import datasets as ds

    rng = random.Random(seed)
    if split == "train":
        faces = ds.split_labelled(ds.load_utkface(SHARED / "utkface" / "images"), 0.3)[0]
        people = [([f.path], f.gender) for f in faces if f.age is not None and 18 <= f.age <= 80]
    else:
        by_id: dict[str, list] = {}
        for f in ds.load_celeba(SHARED / "celeba"):
            by_id.setdefault(str(f.identity), []).append(f)
        people = []
        for _, v in sorted(by_id.items()):
            v = sorted(v, key=lambda f: f.path)
            rng.shuffle(v)
            people.append(([f.path for f in v], v[0].gender))
    out = []
    for gender in ("female", "male"):
        pool = sorted((p for p in people if p[1] == gender), key=lambda p: p[0][0])
        rng.shuffle(pool)
        out += pool[: (n + 1) // 2 if gender == "female" else n // 2]
    return out


def _landmarks(image: np.ndarray):
    """(box, 68 landmarks) of the largest face, or None."""
    from perface.face.detect import detect
    from perface.face.landmarks import predict_landmarks68

    faces = detect(image)
    if not faces:
        return None
    face = max(faces, key=lambda f: f.width * f.height)
    return face.box, predict_landmarks68(image, face.box)


def _swap_all(path: Path, sources: list[str], k: int, rng: random.Random, src_cache: dict, swapper, bcfg,
              folder: Path) -> list[tuple[str, str]]:
    """Swap ``k`` of ``sources`` (seeded order) onto the photo; [] when it has no face large enough."""
    from perface.annotation.build import _crop, _save
    from perface.face.io import read_image

    image = read_image(path)
    found = _landmarks(image)
    if found is None:
        return []
    box, lm = found
    swaps: list[tuple[str, str]] = []
    for src in rng.sample(sources, len(sources)):
        if len(swaps) == k:
            break
        if src not in src_cache:
            simg = read_image(SHARED / "omi" / "images" / f"{src}.jpg")
            sf = _landmarks(simg)
            src_cache[src] = (simg, None if sf is None else sf[1])
        simg, slm = src_cache[src]
        if slm is None:
            continue
        res = swapper.swap(image, lm, simg, slm)
        if not res.ok:
            if res.reason == "too small":
                return []
            continue
        out = folder / "images" / f"{path.stem}_{src}.jpg"
        _save(_crop(res.image, box, bcfg), out)
        swaps.append((src, str(out)))
    return swaps


def build(split: str, n_targets: str = "300", per_target: str = "6", seed: str = "0") -> None:
    """Render the swaps of one split and write its triplets with the simulated answers."""
    from tqdm import tqdm

    from perface import datasets as ds
    from perface.annotation.build import BuildConfig
    from perface.anonymize.swap import get_swapper
    from perface.datasets.ratings import _bootstrap_agreement, _face_positions, _groups

    k, rng = int(per_target), random.Random(int(seed) + 1)
    train_ids, test_ids = _omi_split()
    ids = train_ids if split == "train" else test_ids
    rcfg = _rating_config()
    ratings = ds.load_ratings(SHARED / "omi", rcfg.rating_types, (*rcfg.attributes, "gender"))
    gender = _groups(ratings, _face_positions(ratings, ids), [ratings.attributes.index("gender")]).means[:, 0]
    clear = {"male": [f for f, g in zip(ids, gender, strict=True) if g >= 65],
             "female": [f for f, g in zip(ids, gender, strict=True) if g <= 35]}
    folder = OUT / split
    (folder / "images").mkdir(parents=True, exist_ok=True)
    swapper, bcfg = get_swapper("classic"), BuildConfig()
    src_cache: dict[str, tuple] = {}
    made: list[tuple[str, list[tuple[str, str]]]] = []  # target -> [(source, image path)]
    skipped: list[str] = []
    t0 = time.time()
    for candidates, g in tqdm(_targets(split, int(n_targets), int(seed)), desc=f"{split} targets"):
        swaps: list[tuple[str, str]] = []
        for path in candidates:
            swaps = _swap_all(path, clear[g], k, rng, src_cache, swapper, bcfg, folder)
            if len(swaps) == k:
                break
        if len(swaps) < k:
            skipped.append(f"{candidates[0].name}: {len(swaps)} swaps")
            continue
        made.append((path.name, swaps))
    # the answers: three rater resamples ("people") and 200 for the stand-in's reliability
    faces = list(dict.fromkeys(s for _, sw in made for s, _ in sw))
    pos = {f: i for i, f in enumerate(faces)}
    space = ds.rating_space(ratings, rcfg, faces)
    groups = _groups(ratings, _face_positions(ratings, faces), [ratings.attributes.index(a) for a in rcfg.attributes])
    rows, triples = [], []
    for target, sw in made:
        for c, (src_c, img_c) in enumerate(sw):
            for (src_a, img_a), (src_b, img_b) in combinations([s for i, s in enumerate(sw) if i != c], 2):
                rows.append((target, src_c, src_a, src_b, img_c, img_a, img_b))
                triples.append((pos[src_c], pos[src_a], pos[src_b]))
    tri = np.array(triples)
    three = _bootstrap_agreement(groups, space, tri, 3, np.random.default_rng(int(seed) + 3))
    many = _bootstrap_agreement(groups, space, tri, 200, np.random.default_rng(int(seed) + 4))
    x = space.features()
    closer_a = ((x[tri[:, 0]] - x[tri[:, 1]]) ** 2).sum(1) < ((x[tri[:, 0]] - x[tri[:, 2]]) ** 2).sum(1)
    with (folder / "triplets.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["target", "source_c", "source_a", "source_b", "c", "a", "b", "votes_a_of_3",
                    "votes_a_of_200", "closer_a"])
        for r, v3, v200, ca in zip(rows, three, many, closer_a, strict=True):
            w.writerow([*r, int(v3), int(v200), int(ca)])
    info = {"split": split, "targets": len(made), "per_target": k, "triplets": len(rows), "skipped": skipped,
            "seconds": round(time.time() - t0, 1), "sources": len(faces),
            "d2_share": float(np.isin(three, (0, 3)).mean()),
            "reliable_share": float((np.maximum(many, 200 - many) >= 190).mean())}
    (folder / "build.json").write_text(json.dumps(info, indent=1))
    print(json.dumps({k_: v for k_, v in info.items() if k_ != "skipped"}), f"skipped {len(skipped)}")


def read_triplets(split: str, subset: str = "d1") -> list[tuple[str, str, str]]:
    """(reference, positive, negative) image paths of a split: ``d1`` majority of the three answers, ``d2``
    unanimous ones, ``reliable`` the stand-in's rule (>= 95% of 200 rater resamples agree)."""
    out = []
    with (OUT / split / "triplets.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            v3, v200 = int(r["votes_a_of_3"]), int(r["votes_a_of_200"])
            if subset == "d2" and v3 not in (0, 3):
                continue
            if subset == "reliable" and max(v200, 200 - v200) < 190:
                continue
            a_wins = v3 >= 2 if subset != "reliable" else v200 >= 100
            out.append((r["c"], r["a"], r["b"]) if a_wins else (r["c"], r["b"], r["a"]))
    return out


def _per_target(emb: dict[str, np.ndarray], trips: list[tuple[str, str, str]]) -> dict[str, list[float]]:
    """Per target photo: (correct, count) over its triplets (cosine; ties count half)."""
    by_target: dict[str, list[float]] = {}
    for c, p, n in trips:
        sp, sn = float(emb[c] @ emb[p]), float(emb[c] @ emb[n])
        row = by_target.setdefault(Path(c).name.rsplit("_", 1)[0], [0.0, 0.0])
        row[0] += 1.0 if sp > sn else 0.5 if sp == sn else 0.0
        row[1] += 1.0
    return by_target


def _boot(per: dict[str, list[float]], other: dict[str, list[float]] | None = None) -> tuple[float, float, float]:
    """Accuracy (or, with ``other``, the paired difference) with a 95% bootstrap interval over the targets."""
    keys = sorted(per)
    a = np.array([per[k] for k in keys])
    b = np.array([other[k] for k in keys]) if other is not None else np.zeros_like(a)
    rng = np.random.default_rng(0)

    def stat(i: np.ndarray) -> float:
        return a[i, 0].sum() / a[i, 1].sum() - (b[i, 0].sum() / b[i, 1].sum() if other is not None else 0.0)

    boot = [stat(rng.integers(0, len(keys), len(keys))) for _ in range(2000)]
    return stat(np.arange(len(keys))), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def _accuracy(emb: dict[str, np.ndarray], trips: list[tuple[str, str, str]]) -> tuple[float, float, float]:
    """Triplet accuracy with a 95% bootstrap interval over targets (a target's triplets share images)."""
    return _boot(_per_target(emb, trips))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def embeddings(paths: list[str], which: str) -> dict[str, np.ndarray]:
    """Unit embeddings of the images by a recognizer name or a PerFace model path ('default' = shipped)."""
    from perface.face.io import read_image

    if which in ("dlib", "mobilefacenet", "faceres", "mobileface"):
        from perface.face.detect import detect
        from perface.face.recognizers import get_recognizer

        rec, out = get_recognizer(which), {}
        for p in paths:
            image = read_image(p)
            faces = detect(image)
            if faces:
                face = max(faces, key=lambda f: f.width * f.height)
                out[p] = _unit(rec.embed_crops([rec.crop(image, face)])[0].astype(np.float32))
        return out
    import perface

    model = perface.load(which)
    vecs = model.embed(paths)
    return {p: _unit(np.asarray(v, np.float32)) for p, v in zip(paths, vecs, strict=True)}


def score(models: str = "dlib,mobilefacenet,faceres,mobileface,default") -> None:
    """Triplet accuracy of every recognizer and model on the held-out swapped triplets (D1, D2, reliable)."""
    sets = {s: read_triplets("test", s) for s in ("d1", "d2", "reliable")}
    paths = sorted({p for t in sets["d1"] for p in t})
    res_path = OUT / "scores.json"
    results = json.loads(res_path.read_text()) if res_path.is_file() else {}
    for which in models.split(","):
        t0 = time.time()
        emb = embeddings(paths, which)
        row = {}
        for s, trips in sets.items():
            kept = [t for t in trips if all(p in emb for p in t)]
            per = _per_target(emb, kept)
            acc, lo, hi = _boot(per)
            row[s] = {"accuracy": acc, "ci": [lo, hi], "n": len(kept), "of": len(trips), "per_target": per}
        row["seconds"] = round(time.time() - t0, 1)
        results[which] = row
        res_path.write_text(json.dumps(results, indent=1))
        print(which, {s: (round(v["accuracy"], 4), v["n"]) for s, v in row.items() if s != "seconds"}, flush=True)


def write_csv(split: str, n: int, exclude: set[str], seed: int, name: str, subset: str = "d1") -> tuple[Path, int]:
    """An ``anchor,positive,negative`` CSV of up to ``n`` of the split's triplets, none with a source in ``exclude``."""
    rows = []
    with (OUT / split / "triplets.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            if exclude & {r["source_c"], r["source_a"], r["source_b"]}:
                continue
            v3 = int(r["votes_a_of_3"])
            if subset == "d2" and v3 not in (0, 3):
                continue
            rows.append((r["c"], r["a"], r["b"]) if v3 >= 2 else (r["c"], r["b"], r["a"]))
    random.Random(seed).shuffle(rows)
    rows = rows[:n]
    out = OUT / f"{name}.csv"
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["anchor", "positive", "negative"])
        w.writerows(rows)
    return out, len(rows)


def _fold_faces(k: int) -> tuple[str, ...]:
    """The OMI faces of CV fold ``k`` (the library's fold draw over the 640 non-test faces)."""
    from perface.metric.train import _cv_split, load_config

    cfg = load_config(REPO / "configs" / "default.yaml").data
    return _cv_split(_omi_split()[0], 5, k, cfg.seed)[1]


def cv(name: str, n: str = "5000", folds: str = "0,1,2,3,4", subset: str = "d1") -> None:
    """The shipped recipe plus ``n`` swapped training triplets (0: the recipe itself), per OMI CV fold; the fold's
    own faces are never a source of a training triplet. Reports the fold's OMI accuracy (with the attribute head)
    and the swapped triplets whose three sources all lie in the fold (UTKFace targets, never trained on)."""
    import dataclasses
    import warnings

    from perface.metric.train import load_config, train

    warnings.filterwarnings("ignore")
    base = load_config(REPO / "configs" / "default.yaml")
    res_path = OUT / "cv.json"
    results = json.loads(res_path.read_text()) if res_path.is_file() else {}
    for k in (int(x) for x in folds.split(",")):
        held = set(_fold_faces(k))
        extra: tuple[str, ...] = ()
        n_used = 0
        if int(n):
            csv_path, n_used = write_csv("train", int(n), held, k, f"cv_{name}_fold{k}", subset)
            extra = (str(csv_path),)
        cfg = dataclasses.replace(
            base, data=dataclasses.replace(base.data, cv_folds=5, cv_fold=k, extra=extra),
            optim=dataclasses.replace(base.optim, keep="last"), out=str(OUT / f"cv_{name}" / f"fold{k}"), threads=2)
        r = train(cfg, resume=False, progress=False, log=lambda m: None)
        val = [t for t in read_triplets("train") if _sources(t) <= held]
        emb = embeddings(sorted({p for t in val for p in t}), str(r.model_dir))
        swapped = _accuracy(emb, val)[0] if val else None
        results.setdefault(name, {})[str(k)] = {"omi": r.final_val_accuracy, "swapped_fold": swapped,
                                                 "n_swapped_fold": len(val), "n_extra": n_used,
                                                 "seconds": round(r.seconds, 1)}
        res_path.write_text(json.dumps(results, indent=1))
        print(name, k, results[name][str(k)], flush=True)


def _sources(t: tuple[str, str, str]) -> set[str]:
    return {Path(p).stem.rsplit("_", 1)[1] for p in t}


def final(name: str, n: str = "5000", subset: str = "d1") -> None:
    """The shipped recipe plus ``n`` swapped training triplets, fitted on all 640 non-test faces (like the default),
    into runs/swapped_standin/NAME; then ``score`` it."""
    import dataclasses
    import warnings

    from perface.metric.train import load_config, train

    warnings.filterwarnings("ignore")
    base = load_config(REPO / "configs" / "default.yaml")
    csv_path, n_used = write_csv("train", int(n), set(), 0, f"final_{name}", subset)
    cfg = dataclasses.replace(base, data=dataclasses.replace(base.data, extra=(str(csv_path),)),
                              out=str(OUT / name), threads=2)
    r = train(cfg, resume=False, progress=False, log=lambda m: None)
    print(name, "trained", n_used, "swapped triplets", round(r.seconds), "s", flush=True)
    score(str(r.model_dir.relative_to(REPO)))


NAMES = {"dlib": "dlib identity (consulted by the anonymizer)",
         "mobilefacenet": "MobileFaceNet identity (never consulted)",
         "faceres": "FaceRes identity (consulted)", "mobileface": "MobileFace identity (consulted)",
         "default": "**PerFace, shipped default**"}


def report() -> None:
    """Write the ``swapped_standin`` section of docs/benchmarks.md from scores.json, cv.json and build.json."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from _common import write_fragment

    scores = json.loads((OUT / "scores.json").read_text())
    builds = {s_: json.loads((OUT / s_ / "build.json").read_text()) for s_ in ("train", "test")}
    test = builds["test"]
    rows = ["| method | D1 (majority of 3) | D2 (unanimous) | reliable (>= 95% of 200 resamples) |",
            "|---|---|---|---|"]
    for key, r in scores.items():
        label = NAMES.get(key, f"PerFace + swapped triplets (`{Path(key).parent.name}`)")
        cells = [f"{r[s_]['accuracy']:.3f} [{r[s_]['ci'][0]:.3f}, {r[s_]['ci'][1]:.3f}]"
                 for s_ in ("d1", "d2", "reliable")]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    n = {s_: next(iter(scores.values()))[s_]["of"] for s_ in ("d1", "d2", "reliable")}
    pairs = [("default", "dlib")] + [(k, "default") for k in scores if k not in NAMES]
    diffs = []
    for a, b in pairs:
        if a in scores and b in scores and "per_target" in scores[a]["d1"] and "per_target" in scores[b]["d1"]:
            d, lo, hi = _boot(scores[a]["d1"]["per_target"], scores[b]["d1"]["per_target"])
            la = NAMES.get(a, f"`{Path(a).parent.name}`").strip("*")
            diffs.append(f"{la} minus {NAMES[b].strip('*')}: {d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    rows.append("")
    rows += [f"Paired difference on D1 (bootstrap over the targets): {x}." for x in diffs]
    body = (
        "Issue 18, item 3 (`python benchmarks/studies/swapped_standin.py build test 150 6`, `build train 300 6`, "
        "`score`, `cv NAME N`, `final NAME N`, `report`). Triplets built as SimCelebA was: three OMI faces swapped "
        "onto one real photo with the project's swapper, 224 px crops that share hair, outline and background; the "
        "answer compares the *sources'* OMI rating-space distances without long-haired, hair-color and skin-color "
        "(the swap keeps the target's), each of three simulated annotators being one bootstrap resample of the raters "
        "(D1 majority, D2 unanimous), and 'reliable' the stand-in's own rule. A stand-in: nobody looked at these "
        "images.\n\n"
        f"**Held-out set**: {test['targets']} CelebA photos as targets (one per identity; nothing is trained on "
        f"CelebA) x 6 sources each from the 160 OMI faces the shipped model holds out ({test['sources']} used), "
        f"every (reference, pair) choice among a target's 6 swaps (60 each): {test['triplets']} triplets; D1 "
        f"{n['d1']}, D2 {n['d2']}, reliable {n['reliable']}. Accuracy by cosine; 95% intervals by bootstrap over "
        "the targets (a target's 60 triplets share images, so triplets are not independent).\n\n"
        + "\n".join(rows) + "\n\n"
        "For scale only (different data, real answers): the paper reports ArcFace 0.701 and PerFace 0.917 on "
        "SimCelebA's test split."
    )
    cvp = OUT / "cv.json"
    if cvp.is_file():
        cvr = json.loads(cvp.read_text())
        tr = builds["train"]
        lines = ["| recipe | " + " | ".join(f"fold {k}" for k in range(5)) + " | mean |", "|---" * 7 + "|"]
        for name, folds in cvr.items():
            for what, key in (("OMI CV", "omi"), ("swapped, fold sources", "swapped_fold")):
                vals = [folds.get(str(k), {}).get(key) for k in range(5)]
                got = [v for v in vals if v is not None]
                cells = [f"{v:.4f}" if v is not None else "-" for v in vals]
                mean = f"{np.mean(got):.4f}" if got else "-"
                lines.append(f"| {name}: {what} | " + " | ".join(cells) + f" | {mean} |")
        body += (
            "\n\n**Training on it, by the library's 5-fold CV over the 640 non-test OMI faces.** Training set: "
            f"{tr['targets']} UTKFace adults from its training part (30%) x 6 sources from the 640 training faces "
            f"({tr['triplets']} triplets). Per fold, only triplets whose three sources lie outside the fold are "
            "trained on (`data.extra`, a CSV); 'swapped, fold sources' scores the triplets whose three sources all lie "
            "in the fold (UTKFace targets). `base` is the shipped recipe, `swapN` adds N of the swapped D1 triplets."
            "\n\n" + "\n".join(lines))
    write_fragment("swapped_standin", "A SimCelebA-like swapped stand-in (issue 18, item 3)", body)


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
