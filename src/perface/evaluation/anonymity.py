"""How anonymous are anonymized faces? Re-identification, detectability and attribute agreement.

Protocol (``perface evaluate-anonymization``) on a labelled identity folder (CelebA layout:
``labels.csv`` with ``image,identity,...`` and ``images/``): one probe photo per chosen identity is
anonymized; every other photo of every identity forms the re-ID gallery. Rank-1 re-identification
(the nearest gallery photo has the probe's identity) is measured on the original probes and on the
anonymized ones, with two recognizers:

* **dlib ResNet** identity embedding (cosine), the recognizer the swap's safety check also uses;
* **LBPH** (local binary pattern histograms, Ahonen et al. 2006; chi-square nearest neighbour) on the
  ArcFace-aligned 112 px crop: a hand-crafted recognizer of another family, independent of donor
  selection. It is the only non-dlib identity recognizer available offline here (no ArcFace or FaceNet
  weights ship on PyPI); it is much weaker, so read its numbers together with its rate on originals.

Also: the share of outputs where a face is still detected, and gender / age-group agreement of the
offline attribute predictor between each original face and its anonymized version.
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from perface.evaluation.measures import wilson_interval
from perface.face.align import arcface_crop
from perface.face.detect import REFERENCE_DETECT, DetectConfig, Face, detect
from perface.face.detect import box_iou as _iou
from perface.face.identity import get_embedder
from perface.face.io import InputError, read_image
from perface.face.lbph import chi_square_nearest, lbph_descriptor

LARGE_SKIN_GAP = 50.0  # donor vs face skin lightness (LAB L, 0-255) above which a classic swap looks washed out
# ------------------------------------------------------------------------------------------ protocol


@dataclass
class FaceFeatures:
    """Recognizer features of one face."""

    dlib: np.ndarray
    lbph: np.ndarray


def face_features(image: np.ndarray, face: Face) -> FaceFeatures:
    """dlib identity embedding and LBPH descriptor of a face."""
    ident = get_embedder().embed_faces(image, [face])[0]
    return FaceFeatures(ident, lbph_descriptor(arcface_crop(image, face).crop))


def rank1_hits(feats: Sequence[FaceFeatures], truth: Sequence[str], gallery_ids: np.ndarray,
               gallery_dlib: np.ndarray, gallery_lbph: np.ndarray) -> tuple[list[bool], list[bool]]:
    """Per probe: is the nearest gallery photo of its identity, by dlib cosine and by LBPH chi-square?"""
    d = np.stack([f.dlib for f in feats]) @ gallery_dlib.T
    nn = chi_square_nearest(np.stack([f.lbph for f in feats]), gallery_lbph)
    t = np.asarray(truth)
    return (gallery_ids[d.argmax(1)] == t).tolist(), (gallery_ids[nn] == t).tolist()


def _best_face(image: np.ndarray, near: Face | None, config: DetectConfig) -> Face | None:
    faces = detect(image, config)
    if not faces:
        return None
    if near is None:
        return max(faces, key=lambda f: f.width * f.height)

    best = max(faces, key=lambda f: _iou(f.box, near.box))
    return best if _iou(best.box, near.box) > 0.3 else None


@dataclass
class AnonymityResult:
    """The evaluation table and its raw counts."""

    dataset: str
    method: str
    n_probes: int
    n_gallery: int
    rates: dict[str, dict[str, float]]
    totals: dict[str, int]
    seconds: float
    notes: dict[str, Any] = field(default_factory=dict)
    probes: list[dict[str, Any]] = field(default_factory=list)  # one row per probe: what happened to it

    def to_markdown(self) -> str:
        r = self.rates
        lines = [
            f"{self.dataset}: {self.n_probes} probes (one photo per identity, anonymized with `{self.method}`), "
            f"re-ID gallery of {self.n_gallery} other photos of all identities; {self.seconds:.0f} s.",
            "",
            "| measure | originals | anonymized |",
            "|---|---|---|",
            f"| rank-1 re-ID, dlib ResNet (cosine) | {r['original']['reid_dlib']:.3f} | "
            f"{r['anonymized']['reid_dlib']:.3f} |",
            f"| rank-1 re-ID, LBPH (chi-square; independent of donor choice) | {r['original']['reid_lbph']:.3f} | "
            f"{r['anonymized']['reid_lbph']:.3f} |",
            f"| face still detected | 1.000 | {r['anonymized']['detected']:.3f} |",
            f"| gender kept (offline predictor, original vs output) | - | {r['anonymized']['gender_kept']:.3f} |",
            f"| gender kept, swapped faces only | - | {_fmt(r['anonymized'].get('gender_kept_swapped'))} |",
            f"| age group kept (young < 40) | - | {r['anonymized']['age_group_kept']:.3f} |",
            *([f"| gender kept, independent judge (linear probe on dlib embeddings, fitted on other people) | - | "
               f"{r['anonymized']['gender_kept_judge']:.3f} |"] if "gender_kept_judge" in r["anonymized"] else []),
            *([f"| swapped faces whose donor's skin lightness differs by more than {LARGE_SKIN_GAP:g} (LAB L, "
               f"0-255) | - | {r['anonymized']['skin_gap_large']:.3f} |"]
              if "skin_gap_large" in r["anonymized"] else []),
            *([f"| gender kept, FaceRes gender head ({self._faceres_role()}) | - | "
               f"{r['anonymized']['gender_kept_faceres']:.3f} |"] if "gender_kept_faceres" in r["anonymized"] else []),
            *([f"| FaceRes gender head agrees with the dataset's gender label | "
               f"{r['original']['faceres_matches_label']:.3f} | {r['anonymized']['faceres_matches_label']:.3f} |"]
              if "faceres_matches_label" in r["anonymized"] else []),
            *([f"| independent judge agrees with the dataset's gender label | "
               f"{r['original']['judge_matches_label']:.3f} | {r['anonymized']['judge_matches_label']:.3f} |"]
              if "judge_matches_label" in r["anonymized"] else []),
            "",
            "Faces: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.totals.items()) + ".",
        ]
        if "recognizers" in r:
            lines += ["", "Every recognizer (95% Wilson intervals; 'still verified' = the output and the original "
                      "are one person for that recognizer at its threshold, calibrated on CelebA pairs):", "",
                      recognizer_table(r["recognizers"])]
            if self.method == "swap":
                lines += ["", self._judges_line()]
        return "\n".join(lines)

    def _judges_line(self) -> str:
        """Which face networks the anonymizer never consulted (the judges), or a warning that none is left."""
        never = [n for n, row in self.rates["recognizers"].items() if not row["consulted"] and n != "lbph"]
        if never:
            return f"Never consulted by the anonymizer (its independent judges): {', '.join(never)}."
        return ("**No face network was left unconsulted**: every one scored here also decided which swaps were "
                "kept, so these figures are partly made by construction (leave one out with --recognizers).")

    def _faceres_role(self) -> str:
        """What the anonymizer did with FaceRes in this run, for the gender-head row's label."""
        if "faceres" in self.notes.get("consulted", []):
            return "never consulted for gender; the anonymizer checks FaceRes's identity output"
        return "a network the anonymizer never runs"

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "method": self.method, "n_probes": self.n_probes,
                "n_gallery": self.n_gallery, "rates": self.rates, "totals": self.totals,
                "seconds": round(self.seconds, 1), "notes": self.notes, "probes": self.probes}


class GenderJudge:
    """An independent gender judge for the evaluation: a linear ridge probe on dlib identity embeddings,
    fitted on labelled faces of other people (e.g. UTKFace adults). It shares nothing with the offline
    predictor that the anonymizer's own attribute check uses, so "gender kept" by this judge is not
    self-confirming. Why ridge and not a library classifier: two lines of numpy, no extra dependency."""

    def __init__(self, embeddings: np.ndarray, is_male: np.ndarray, ridge: float = 1.0) -> None:
        x = np.hstack([np.asarray(embeddings, np.float64), np.ones((len(embeddings), 1))])
        y = np.where(np.asarray(is_male, bool), 1.0, -1.0)
        if len(set(y.tolist())) < 2:
            raise ValueError("the gender judge needs faces of both genders")
        self.w = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ y)

    def is_male(self, embeddings: np.ndarray) -> np.ndarray:
        """Boolean per embedding row."""
        e = np.asarray(embeddings, np.float64)
        return (e @ self.w[:-1] + self.w[-1]) > 0


def fit_gender_judge(utkface: str | Path, n: int = 1500, min_age: int = 18, seed: int = 0,
                     progress: bool = True) -> GenderJudge:
    """A :class:`GenderJudge` fitted on ``n`` random UTKFace faces aged ``min_age`` or more (other people
    than CelebA's), from their dlib embeddings and file-name gender."""
    from perface.datasets import load_utkface

    faces = [f for f in load_utkface(utkface) if f.age is not None and f.age >= min_age]
    rng = np.random.default_rng(seed)
    faces = [faces[i] for i in sorted(rng.choice(len(faces), min(n, len(faces)), replace=False))]
    det = REFERENCE_DETECT  # the evaluation's own eyes stay fixed whatever the anonymizer runs
    emb, male = [], []
    for f in tqdm(faces, desc="gender judge", disable=not progress):
        found = _read_with_face(f.path, det)
        if found is not None:
            emb.append(get_embedder().embed_faces(found[0], [found[1]])[0])
            male.append(f.gender == "male")
    if len(set(male)) < 2:
        raise InputError(Path(utkface), f"the gender judge needs usable faces of both genders aged {min_age}+")
    return GenderJudge(np.stack(emb), np.array(male))


def _read_male_labels(root: Path) -> dict[str, bool]:
    """CelebA's ``Male`` label by image name (as in labels.csv), or empty when the file has no such labels."""
    from perface.datasets import DatasetError, load_celeba

    try:
        faces = load_celeba(root)
    except DatasetError:
        return {}
    return {f.path.relative_to(root / "images").as_posix(): f.gender == "male" for f in faces}


def _fmt(value: float | None) -> str:
    """Three decimals, or '-' for a rate that does not apply (no swapped faces)."""
    return "-" if value is None or np.isnan(value) else f"{value:.3f}"


_GALLERY_CACHE: dict = {}


def _read_with_face(path: Path, det: DetectConfig) -> tuple[np.ndarray, Face] | None:
    """The image and its largest face, or None when unreadable or faceless (skipped by the protocol)."""
    try:
        image = read_image(path)
    except InputError:
        return None
    face = _best_face(image, None, det)
    return None if face is None else (image, face)


def readable_faces(root: Path, rows: Sequence[tuple[str, str]], det: DetectConfig, desc: str | None = None,
                   progress: bool = False) -> Iterator[tuple[str, str, np.ndarray, Face]]:
    """``(identity, image name, image, its largest face)`` for each ``(identity, image name)`` row of ``root``'s
    images, in order; rows whose image is unreadable or faceless are skipped, as the protocol skips them."""
    for ident, im in tqdm(rows, desc=desc, disable=not progress):
        found = _read_with_face(root / "images" / im, det)
        if found is not None:
            yield ident, im, *found


def _gallery_features(root: Path, rows: list[tuple[str, str]], det: DetectConfig, progress: bool):
    """Identities, dlib embeddings and LBPH descriptors of the re-ID gallery (cached per process)."""
    g_ids, g_dlib, g_lbph = [], [], []
    for ident, _, image, face in readable_faces(root, rows, det, "gallery", progress):
        f = face_features(image, face)
        g_ids.append(ident)
        g_dlib.append(f.dlib)
        g_lbph.append(f.lbph)
    return np.array(g_ids), np.stack(g_dlib), np.stack(g_lbph)


def _judge_rates(judge: GenderJudge, root: Path, orig_f: list[FaceFeatures], anon_f: list[FaceFeatures],
                 probes: list[dict[str, Any]], rates: dict[str, dict[str, float]]) -> None:
    """Add the independent judge's gender-kept rate (and label agreement, where labels exist) to ``rates``."""
    before = judge.is_male(np.stack([f.dlib for f in orig_f]))
    after = judge.is_male(np.stack([f.dlib for f in anon_f]))
    for row, b, a in zip(probes, before, after, strict=True):
        row["judge_male_before"], row["judge_male_after"] = bool(b), bool(a)
    rates["anonymized"]["gender_kept_judge"] = float(np.mean(before == after))
    labels = _read_male_labels(root)
    known = [i for i, row in enumerate(probes) if row["image"] in labels]
    if known:
        truth = np.array([labels[probes[i]["image"]] for i in known])
        rates["original"]["judge_matches_label"] = float(np.mean(before[known] == truth))
        rates["anonymized"]["judge_matches_label"] = float(np.mean(after[known] == truth))


def split_probes(root: Path, n_probes: int = 150, seed: int = 0) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The protocol's ``(identity, image)`` rows: one probe photo for each of ``n_probes`` identities drawn
    among those with two or more photos, and every other photo of those identities as the re-ID gallery."""
    labels = root / "labels.csv"
    if not labels.is_file():
        raise InputError(labels, "labels file not found (expects labels.csv with image,identity columns)")
    by_id: dict[str, list[str]] = defaultdict(list)
    with open(labels, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"image", "identity"} <= set(reader.fieldnames):
            raise InputError(labels, "needs 'image' and 'identity' columns")
        for row in reader:
            by_id[row["identity"]].append(row["image"])
    rng = np.random.default_rng(seed)
    ids = sorted(i for i, imgs in by_id.items() if len(imgs) >= 2)
    chosen = [ids[i] for i in sorted(rng.choice(len(ids), min(n_probes, len(ids)), replace=False))]
    probe_rows, gallery_rows = [], []
    for ident in ids:
        imgs = list(by_id[ident])
        if ident in chosen:
            k = int(rng.integers(len(imgs)))
            probe_rows.append((ident, imgs.pop(k)))
        gallery_rows.extend((ident, im) for im in imgs)
    return probe_rows, gallery_rows


def _rate(hits: Sequence[bool]) -> dict[str, float]:
    k, n = int(np.sum(hits)), len(hits)
    lo, hi = wilson_interval(k, n)
    return {"rate": k / n if n else float("nan"), "low": lo, "high": hi, "k": k, "n": n}


_RECOGNIZER_GALLERY: dict[tuple, tuple[np.ndarray, dict[str, np.ndarray]]] = {}


def recognizer_gallery(root: Path, rows: list[tuple[str, str]], det: DetectConfig, names: Sequence[str],
                       progress: bool, batch: int = 32) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Gallery identities and every named recognizer's features of each gallery photo's face (cached per run)."""
    from perface.face.recognizers import get_recognizer

    key = (str(root.resolve()), tuple(rows), tuple(names))
    if key in _RECOGNIZER_GALLERY:
        return _RECOGNIZER_GALLERY[key]
    ids, feats = [], {n: [] for n in names}
    pending: list[tuple[np.ndarray, Face]] = []

    def flush() -> None:
        for n in names:
            rec = get_recognizer(n)
            feats[n].append(rec.embed_crops([rec.crop(im, f) for im, f in pending]))
        pending.clear()

    for ident, _, image, face in readable_faces(root, rows, det, "re-ID gallery, every recognizer", progress):
        ids.append(ident)
        pending.append((image, face))
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    out = (np.asarray(ids), {n: np.concatenate(v) for n, v in feats.items()})
    _RECOGNIZER_GALLERY.clear()
    _RECOGNIZER_GALLERY[key] = out
    return out


def recognizer_rates(names: Sequence[str], consulted: Sequence[str], originals: list[tuple[np.ndarray, Face]],
                     outputs: list[tuple[np.ndarray, Face]], truth: Sequence[str], gallery_ids: np.ndarray,
                     gallery: dict[str, np.ndarray], probes: list[dict[str, Any]] | None = None
                     ) -> dict[str, dict[str, Any]]:
    """Per recognizer: rank-1 re-ID of originals and outputs against the gallery, and the share of outputs it
    still verifies as the original person at its FAR 1%, FAR 0.1% and equal-error thresholds (95% intervals).
    ``probes``: per-probe rows (one per original) that also get each recognizer's score of original vs output."""
    from perface.face.recognizers import get_recognizer

    t = np.asarray(truth)
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        rec = get_recognizer(n)
        fo = rec.embed_crops([rec.crop(im, f) for im, f in originals])
        fa = rec.embed_crops([rec.crop(im, f) for im, f in outputs])
        rank_o = gallery_ids[rec.score_matrix(fo, gallery[n]).argmax(1)] == t
        rank_a = gallery_ids[rec.score_matrix(fa, gallery[n]).argmax(1)] == t
        pair = rec.score(fo, fa)
        for row_p, v, hit in zip(probes or (), pair, rank_a, strict=False):
            row_p.setdefault("recognizer_scores", {})[n] = round(float(v), 4)
            row_p.setdefault("reid_by", {})[n] = bool(hit)  # this network's rank-1 match is the person
        row: dict[str, Any] = {"consulted": n in consulted, "network": rec.network,
                               "training_data": rec.training_data,
                               "rank1_original": _rate(rank_o.tolist()), "rank1_anonymized": _rate(rank_a.tolist())}
        if rec.calibration is not None:
            for point in ("far_1e-2", "far_1e-3", "eer"):
                row[f"verified_{point}"] = _rate((pair >= rec.threshold(point)).tolist())  # type: ignore[arg-type]
        row["auc"] = rec.calibration.auc if rec.calibration is not None else None
        out[n] = row
    return out


def recognizer_table(rows: dict[str, dict[str, Any]]) -> str:
    """The per-recognizer markdown table of :func:`recognizer_rates`."""
    def cell(r: dict[str, float]) -> str:
        return f"{r['rate']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"

    lines = ["| recognizer (training data) | consulted by the anonymizer | CelebA-pair AUC | rank-1, originals "
             "| rank-1, anonymized | still verified at FAR 1% | at FAR 0.1% | at EER |",
             "|---|---|---|---|---|---|---|---|"]
    for n, r in rows.items():
        auc = "-" if r.get("auc") is None else f"{r['auc']:.3f}"
        ver = [cell(r[k]) if k in r else "-" for k in ("verified_far_1e-2", "verified_far_1e-3", "verified_eer")]
        lines.append(f"| {n} ({r['training_data']}) | {'**yes**' if r['consulted'] else 'no'} | {auc} | "
                     f"{cell(r['rank1_original'])} | {cell(r['rank1_anonymized'])} | {' | '.join(ver)} |")
    return "\n".join(lines)


def evaluate_anonymization(
    root: str | Path,
    n_probes: int = 150,
    gallery: str | Path | None = None,
    model: str = "default",
    method: str = "swap",
    seed: int = 0,
    log: Callable[[str], None] = print,
    progress: bool = True,
    group_by: str = "hybrid",
    gender_judge: GenderJudge | None = None,
    swapper_options: dict[str, Any] | None = None,
    select_options: dict[str, Any] | None = None,
    anonymize_options: dict[str, Any] | None = None,
    recognizers: Sequence[str] | None = None,
) -> AnonymityResult:
    """Run the protocol in the module docstring on a CelebA-layout folder.

    ``gender_judge``: also score gender kept (and agreement with the folder's ``Male`` labels) with a
    judge independent of the anonymizer's own attribute check. ``swapper_options``, ``select_options``,
    ``anonymize_options``: ClassicSwapper, SelectConfig and AnonymizeConfig settings to evaluate instead
    of the defaults (e.g. ``{"max_yaw_deg": 32}``, ``{"max_age_gap": None}``). ``recognizers``: the recognizers
    to score re-ID and verification with (default: every one the project has; ``()`` for none)."""
    from perface.face.recognizers import RECOGNIZERS

    recognizers = tuple(RECOGNIZERS if recognizers is None else recognizers)
    from perface.anonymize.anonymizer import AnonymizeConfig, Anonymizer
    from perface.anonymize.select import SelectConfig
    from perface.anonymize.swap import skin_lightness
    from perface.face.attributes import predict_attributes
    from perface.face.landmarks import predict_landmarks68

    swapper_options = dict(swapper_options or {})
    t0 = time.perf_counter()
    root = Path(root)
    probe_rows, gallery_rows = split_probes(root, n_probes, seed)
    det = REFERENCE_DETECT  # the evaluation's own detector: a fixed instrument (not the anonymizer's)
    select_options, anonymize_options = dict(select_options or {}), dict(anonymize_options or {})
    cfg = AnonymizeConfig(method=method, select=SelectConfig(seed=seed, group_by=group_by,  # type: ignore[arg-type]
                                                             **select_options),
                          swapper_options=swapper_options, **anonymize_options)

    log(f"re-ID gallery: {len(gallery_rows)} photos")
    key = (str(root.resolve()), tuple(gallery_rows))
    if key not in _GALLERY_CACHE:
        _GALLERY_CACHE.clear()
        _GALLERY_CACHE[key] = _gallery_features(root, gallery_rows, det, progress)
    g_ids_a, g_dlib_m, g_lbph_m = _GALLERY_CACHE[key]

    anonymizer = Anonymizer(cfg, gallery=gallery, model=model)
    orig_f, anon_f, detected, g_keep, a_keep = [], [], [], [], []
    totals = {"found": 0, "swapped": 0, "swaps_softened": 0, "swaps_blurred_around": 0, "hidden_by_fallback": 0,
              "hidden_as_requested": 0, "left_unanonymized": 0}
    truth, probes = [], []
    originals, outputs = [], []  # (image, face) of each probe before and after, for every recognizer
    reasons: dict[str, int] = {}
    for ident, im, image, face in readable_faces(root, probe_rows, det, "anonymize probes", progress):
        out, records = anonymizer.anonymize_array(image)
        records = [r for r in records if r.kind == "face"]  # unsure regions (hidden too) are not faces
        totals["found"] += len(records)
        totals["swapped"] += sum(r.method == "swap" for r in records)
        totals["swaps_softened"] += sum(r.method == "swap" and r.softened is not None for r in records)
        totals["swaps_blurred_around"] += sum(r.method == "swap" and r.blurred_around for r in records)
        totals["hidden_by_fallback"] += sum(r.method != "swap" and r.reason != "requested" for r in records)
        totals["hidden_as_requested"] += sum(r.reason == "requested" for r in records)
        totals["left_unanonymized"] += sum(r.left_unanonymized for r in records)
        for r in records:
            if r.method != "swap" and r.reason != "requested":
                kind = str(r.reason).split(" (")[0]  # drop per-face numbers such as the cosine
                reasons[kind] = reasons.get(kind, 0) + 1
        truth.append(ident)
        orig_f.append(face_features(image, face))
        after = _best_face(out, face, det)
        detected.append(after is not None)
        # Re-ID is attempted on the output whatever happens: if no face is found there, the recognizers
        # see the same region as the original face (what an attacker cropping that spot would get).
        probe_face = after or face
        anon_f.append(face_features(out, probe_face))
        originals.append((image, face))
        outputs.append((out, probe_face))
        box = tuple(int(round(v)) for v in face.box)
        pa, pb = predict_attributes([image, out], [box, tuple(int(round(v)) for v in probe_face.box)])
        g_keep.append(pa.gender == pb.gender)
        a_keep.append(pa.age_group == pb.age_group)
        main = max(records, key=lambda r: _iou(r.box, face.box), default=None)
        skin_gap = None
        if main is not None and main.method == "swap" and main.donor_id is not None:
            # measured here for every setting (the anonymizer records it only when its skin window is on)
            own = skin_lightness(image, predict_landmarks68(image, face.box))
            donor = anonymizer.donor_skin_lightness(main.donor_id)
            skin_gap = None if own is None or donor is None else round(donor - own, 1)
        probes.append({"image": im, "identity": ident, "method": main.method if main else None,
                       "reason": main.reason if main else None, "donor_id": main.donor_id if main else None,
                       "softened": main.softened if main else None,
                       "blurred_around": bool(main and main.blurred_around),
                       "detected_after": after is not None, "gender_before": pa.gender, "gender_after": pb.gender,
                       "age_group_before": pa.age_group, "age_group_after": pb.age_group,
                       "identity_similarity_donor": main.identity_similarity_donor if main else None,
                       "identity_similarity_after": main.identity_similarity_after if main else None,
                       # the anonymizer's own report: each consulted recognizer, face vs donor and face vs output
                       "consulted_donor": main.recognizers_donor if main else None,
                       "consulted_after": main.recognizers_after if main else None,
                       "skin_lightness_gap": skin_gap})

    o_hits_d, o_hits_l = rank1_hits(orig_f, truth, g_ids_a, g_dlib_m, g_lbph_m)
    a_hits_d, a_hits_l = rank1_hits(anon_f, truth, g_ids_a, g_dlib_m, g_lbph_m)
    o_dlib, o_lbph = float(np.mean(o_hits_d)), float(np.mean(o_hits_l))
    a_dlib, a_lbph = float(np.mean(a_hits_d)), float(np.mean(a_hits_l))
    for row, hit_d, hit_l in zip(probes, a_hits_d, a_hits_l, strict=True):
        row["reid_dlib"], row["reid_lbph"] = hit_d, hit_l
    rates = {
        "original": {"reid_dlib": o_dlib, "reid_lbph": o_lbph},
        "anonymized": {"reid_dlib": a_dlib, "reid_lbph": a_lbph, "detected": float(np.mean(detected)),
                       "gender_kept": float(np.mean(g_keep)), "age_group_kept": float(np.mean(a_keep)),
                       "gender_kept_swapped": float(np.mean([g for g, p in zip(g_keep, probes, strict=True)
                                                             if p["method"] == "swap"] or [np.nan]))},
    }
    gaps = [abs(p["skin_lightness_gap"]) for p in probes if p["skin_lightness_gap"] is not None]
    if gaps:
        rates["anonymized"]["skin_gap_large"] = float(np.mean(np.array(gaps) > LARGE_SKIN_GAP))
    if gender_judge is not None:
        _judge_rates(gender_judge, root, orig_f, anon_f, probes, rates)
    if "faceres" in recognizers and originals:
        # a second gender judge: FaceRes's gender head (the anonymizer's attribute check never asks it; by default
        # it consults FaceRes's identity output, which shares the network)
        from perface.face.attribute_networks import FaceResPredictor

        fr = FaceResPredictor()
        before = fr.predict([im for im, _ in originals], [tuple(int(round(v)) for v in f.box) for _, f in originals])
        after_ = fr.predict([im for im, _ in outputs], [tuple(int(round(v)) for v in f.box) for _, f in outputs])
        kept = [a.gender == b.gender for a, b in zip(before, after_, strict=True)]
        rates["anonymized"]["gender_kept_faceres"] = float(np.mean(kept))
        male = _read_male_labels(root)
        labelled = [(p["image"] in male, male.get(p["image"]), a, b) for p, a, b in zip(probes, before, after_,
                                                                                       strict=True)]
        if any(has for has, *_ in labelled):
            rates["original"]["faceres_matches_label"] = float(np.mean(
                [(a.gender == "male") == m for has, m, a, _ in labelled if has]))
            rates["anonymized"]["faceres_matches_label"] = float(np.mean(
                [(b.gender == "male") == m for has, m, _, b in labelled if has]))
        for row, a, b in zip(probes, before, after_, strict=True):
            row["faceres_gender_before"], row["faceres_gender_after"] = a.gender, b.gender
    if recognizers:
        consulted = ("dlib", *cfg.recognizers) if method == "swap" else ()
        g_ids_r, g_feats = recognizer_gallery(root, gallery_rows, det, recognizers, progress)
        rates["recognizers"] = recognizer_rates(recognizers, consulted, originals, outputs, truth, g_ids_r,
                                                g_feats, probes)
    return AnonymityResult(root.name, method, len(truth), len(g_ids_a), rates, totals, time.perf_counter() - t0,
                           {"seed": seed, "group_by": group_by, "swapper_options": swapper_options,
                            "select_options": select_options, "anonymize_options": anonymize_options,
                            "fallback_reasons": reasons,
                            "recognizers": list(recognizers),
                            "consulted": ["dlib", *cfg.recognizers] if method == "swap" else []}, probes)
