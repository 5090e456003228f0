"""Issue 17: would a crowd of *real* faces tell FaceRes's rank-1 hits from the other swaps better than the donors do?

Why: FaceRes's crowd check (round 36) compares the output's score against the face with its 4th highest score
against the gallery's other donors, synthetic OMI faces. FaceRes's rank-1 hits after a swap are outputs whose
nearest photo among 3,056 real ones is the person's own; a synthetic crowd might be too easy a standard. Here the
crowd is 2,000 UTKFace photos (real, none of them in the evaluation) beside the donors, and each draw's outputs
are scored both ways.

``run SEEDS``: the defaults through the evaluation's draws (the same probes, detector and gallery as ``perface
evaluate-anonymization``); per probe: how its face was anonymized (the record overlapping it best, as the evaluation
picks it; the rows in runs/real_crowd of 2026-12-07 took the highest-scoring face's record, which only differs in
photos of several faces and only in the ``method`` and ``reason`` columns), FaceRes rank-1 hit, its best same-person
and best other-person gallery scores, the output's score against the original (the anonymizer's crop and the
evaluation's), and the top 30 scores against each crowd. Writes runs/real_crowd/seedN.json (about 6 minutes a draw
on 2 cores).
``report``: AUC of each rule ("score minus the crowd's k-th highest") at separating the hits, and what a refusal
at a margin would catch and cost. The UTKFace crowd is for this screen only: its photos may not ship.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import REPO, shared_data  # noqa: E402

RUNS = REPO / "runs" / "real_crowd"
N_CROWD = 2000


def utk_crowd() -> np.ndarray:
    """FaceRes features of 2,000 seeded UTKFace chips, padded so the evaluation's detector finds the face."""
    import cv2

    from perface.face.detect import REFERENCE_DETECT, detect_with_unsure
    from perface.face.io import read_image
    from perface.face.recognizers import get_recognizer

    path = RUNS / "utk_faceres.npy"
    if path.exists():
        return np.load(path)
    rec = get_recognizer("faceres")
    files = sorted((shared_data() / "utkface" / "images").glob("*.jpg"))
    pick = [files[i] for i in sorted(np.random.default_rng(0).choice(len(files), N_CROWD, replace=False))]
    crops = []
    for f in pick:
        im = cv2.copyMakeBorder(read_image(f), 60, 60, 60, 60, cv2.BORDER_REPLICATE)
        faces = detect_with_unsure(im, REFERENCE_DETECT)[0]
        if faces:
            crops.append(rec.crop(im, max(faces, key=lambda fc: fc.score)))
    feats = np.concatenate([rec.embed_crops(crops[i:i + 32]) for i in range(0, len(crops), 32)])
    RUNS.mkdir(parents=True, exist_ok=True)
    np.save(path, feats)
    return feats


def run(seeds: list[int]) -> None:
    """Each draw's outputs scored against both crowds (module docstring)."""
    from perface.anonymize.anonymizer import AnonymizeConfig, Anonymizer
    from perface.anonymize.select import SelectConfig
    from perface.evaluation.anonymity import _best_face, readable_faces, recognizer_gallery, split_probes
    from perface.face.detect import REFERENCE_DETECT, box_iou
    from perface.face.recognizers import get_recognizer

    root = shared_data() / "celeba"
    rec = get_recognizer("faceres")
    utk = utk_crowd()
    for seed in seeds:
        t0 = time.time()
        probe_rows, gallery_rows = split_probes(root, 150, seed)
        g_ids, g_feats = recognizer_gallery(root, gallery_rows, REFERENCE_DETECT, ("faceres",), False)
        an = Anonymizer(AnonymizeConfig(select=SelectConfig(seed=seed, group_by="hybrid")))
        donors = np.stack([an._donor_features("faceres", i) for i in an.gallery.ids()])
        rows = []
        for ident, name, image, face in readable_faces(root, probe_rows, REFERENCE_DETECT):
            out, records = an.anonymize_array(image)
            after = _best_face(out, face, REFERENCE_DETECT) or face
            fo, fa, own = (rec.embed_crops([rec.crop(im, f)]) for im, f in ((image, face), (out, after), (out, face)))
            gs = rec.score_matrix(fa, g_feats["faceres"])[0]
            same = g_ids == ident
            main = max((r for r in records if r.kind == "face"), key=lambda r: box_iou(r.box, face.box), default=None)
            rows.append({"image": name, "identity": ident, "hit": bool(g_ids[gs.argmax()] == ident),
                         "best_same": float(gs[same].max()), "best_other": float(gs[~same].max()),
                         "s_orig": float(rec.score(fo, fa)[0]), "s_orig_own": float(rec.score(fo, own)[0]),
                         "method": main.method if main else None, "reason": (main.reason or "")[:80] if main else None,
                         "omi_top": np.sort(rec.score_matrix(own, donors)[0])[::-1][:30].round(4).tolist(),
                         "utk_top": np.sort(rec.score_matrix(own, utk)[0])[::-1][:30].round(4).tolist()})
        (RUNS / f"seed{seed}.json").write_text(json.dumps(rows))
        print(f"seed {seed}: {sum(r['hit'] for r in rows)} FaceRes rank-1 hits, {time.time() - t0:.0f} s", flush=True)


def _auc(x: np.ndarray, y: np.ndarray) -> float:
    """P(a hit's value > a non-hit's), ties half."""
    a, b = x[y][:, None], x[~y][None, :]
    return float(np.mean(a > b) + 0.5 * np.mean(a == b))


def report() -> None:
    """AUCs and margins over every draw written by ``run``."""
    rows = [r for p in sorted(RUNS.glob("seed*.json")) for r in json.loads(p.read_text())]
    hit = np.array([r["hit"] for r in rows])
    s = np.array([r["s_orig_own"] for r in rows])
    print(f"{len(rows)} probes, {hit.sum()} FaceRes rank-1 hits")
    print(f"AUC of the output's score against the face alone: {_auc(s, hit):.3f}")
    for k in (1, 4, 10, 20):
        omi, utk = (np.array([r[c][k - 1] for r in rows]) for c in ("omi_top", "utk_top"))
        print(f"k={k:2d}: AUC score - donors' k-th {_auc(s - omi, hit):.3f}, "
              f"score - UTKFace's k-th {_auc(s - utk, hit):.3f}")
    for crowd in ("omi_top", "utk_top"):
        for k, margin in ((4, -0.02), (4, -0.05), (10, -0.05), (1, -0.05)):
            flagged = s - np.array([r[crowd][k - 1] for r in rows]) >= margin
            print(f"{crowd[:3]} k={k} margin {margin}: flags {flagged.sum()} of {len(rows)} outputs, "
                  f"{(flagged & hit).sum()} of {hit.sum()} hits")
    for r in rows:
        if r["hit"]:
            print(f"  hit {r['image']} ({r['method']}): score {r['s_orig_own']:.3f}, "
                  f"gallery same {r['best_same']:.3f} vs other {r['best_other']:.3f}, "
                  f"donors' 4th {r['omi_top'][3]:.3f}, UTKFace's 4th {r['utk_top'][3]:.3f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        run([int(s) for s in sys.argv[2:]] or [0, 1, 2, 3])
    elif len(sys.argv) > 1 and sys.argv[1] == "report":
        report()
    else:
        raise SystemExit(__doc__)
