"""The anonymity evaluation: LBPH recognizer, probe/gallery split and the end-to-end protocol."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from perface.evaluation.anonymity import (
    AnonymityResult,
    GenderJudge,
    _iou,
    evaluate_anonymization,
    fit_gender_judge,
    split_probes,
)
from perface.face.io import InputError
from perface.face.recognizers import get_recognizer

CHIPS = Path(__file__).parents[1] / "data" / "chips"


def _write_labels(root: Path, rows: list[tuple[str, str]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "identity", "Male", "Young"])
        for image, ident in rows:
            w.writerow([image, ident, 1, 1])


def test_iou() -> None:
    assert _iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert _iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert _iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_split_probes_is_disjoint_deterministic_and_skips_single_photo_identities(tmp_path: Path) -> None:
    rows = [(f"{i}_{k}.jpg", str(i)) for i in range(6) for k in range(3)] + [("lonely.jpg", "99")]
    _write_labels(tmp_path, rows)
    probes, gallery = split_probes(tmp_path, n_probes=4, seed=3)
    assert len(probes) == 4 and len({i for i, _ in probes}) == 4
    assert "99" not in {i for i, _ in probes + gallery}
    assert not {im for _, im in probes} & {im for _, im in gallery}
    assert len(probes) + len(gallery) == 18  # every photo of the 6 identities, nothing lost
    assert split_probes(tmp_path, n_probes=4, seed=3) == (probes, gallery)
    assert split_probes(tmp_path, n_probes=4, seed=4) != (probes, gallery)


def test_split_probes_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="labels.csv"):
        split_probes(tmp_path)
    (tmp_path / "labels.csv").write_text("file,person\na.jpg,1\n")
    with pytest.raises(InputError, match="'image' and 'identity'"):
        split_probes(tmp_path)


def test_result_dict_and_markdown_carry_the_rates() -> None:
    rates = {"original": {"reid_dlib": 0.9, "reid_lbph": 0.4},
             "anonymized": {"reid_dlib": 0.02, "reid_lbph": 0.2, "detected": 0.97, "gender_kept": 0.94,
                            "age_group_kept": 0.87}}
    res = AnonymityResult("celeba", "swap", 150, 3000, rates, {"found": 150}, 12.0, {}, [{"image": "x.jpg"}])
    d = res.to_dict()
    assert d["rates"]["anonymized"]["reid_lbph"] == 0.2 and d["probes"] == [{"image": "x.jpg"}]
    md = res.to_markdown()
    assert "| rank-1 re-ID, dlib ResNet (cosine) | 0.900 | 0.020 |" in md and "found 150" in md
    assert "skin lightness" not in md  # no swaps measured, no row
    rates["anonymized"]["skin_gap_large"] = 0.25
    assert "differs by more than 50 (LAB L, 0-255) | - | 0.250 |" in res.to_markdown()


def test_markdown_names_the_never_consulted_judges_and_warns_when_none_is_left() -> None:
    """Every anonymity figure names a recognizer the anonymizer never consulted, or says plainly that none is left."""
    cell = {"rate": 0.02, "low": 0.01, "high": 0.05, "k": 3, "n": 150}

    def row(consulted: bool) -> dict:
        return {"consulted": consulted, "training_data": "x", "rank1_original": cell, "rank1_anonymized": cell}

    rates = {"original": {"reid_dlib": 0.9, "reid_lbph": 0.4},
             "anonymized": {"reid_dlib": 0.02, "reid_lbph": 0.2, "detected": 0.97, "gender_kept": 0.94,
                            "age_group_kept": 0.87},
             "recognizers": {"dlib": row(True), "faceres": row(True), "mobilefacenet": row(False),
                             "lbph": row(False)}}
    res = AnonymityResult("celeba", "swap", 150, 3000, rates, {"found": 150}, 12.0, {}, [])
    md = res.to_markdown()
    assert "Never consulted by the anonymizer (its independent judges): mobilefacenet." in md  # LBPH is no judge
    rates["recognizers"]["mobilefacenet"] = row(True)
    assert "No face network was left unconsulted" in res.to_markdown()
    assert "independent judges" not in AnonymityResult("celeba", "blur", 150, 3000, rates, {}, 1.0, {},
                                                       []).to_markdown()  # a blur consults nobody: no line


def test_evaluate_anonymization_end_to_end_with_blur(tmp_path: Path) -> None:
    """Three identities, each a synthetic face and its slightly brightened copy: the originals are
    re-identified by dlib, the blurred probes are listed one by one, and no face is left as it was."""
    names = ["omi_1.jpg", "omi_2.jpg", "omi_4.jpg"]
    images = tmp_path / "images"
    images.mkdir(parents=True)
    rows = []
    for k, name in enumerate(names):
        chip = cv2.imread(str(CHIPS / name))
        padded = cv2.copyMakeBorder(chip, 60, 60, 60, 60, cv2.BORDER_REFLECT)
        cv2.imwrite(str(images / f"{k}_a.jpg"), padded)
        cv2.imwrite(str(images / f"{k}_b.jpg"), cv2.convertScaleAbs(padded, alpha=1.05, beta=4))
        rows += [(f"{k}_a.jpg", str(k)), (f"{k}_b.jpg", str(k))]
    _write_labels(tmp_path, rows)
    # A judge that calls every face male agrees with the all-male labels before and after, and so keeps gender.
    always_male = GenderJudge(np.eye(2, 128), np.array([True, False]))
    always_male.w = np.r_[np.zeros(128), 1.0]
    res = evaluate_anonymization(tmp_path, n_probes=3, method="blur", log=lambda _m: None, progress=False,
                                 gender_judge=always_male)
    assert res.rates["anonymized"]["gender_kept_judge"] == 1.0
    assert res.rates["original"]["judge_matches_label"] == res.rates["anonymized"]["judge_matches_label"] == 1.0
    assert all(p["judge_male_before"] and p["judge_male_after"] for p in res.probes)
    assert "independent judge" in res.to_markdown()
    assert res.n_probes == 3 and res.n_gallery == 3
    assert res.rates["original"]["reid_dlib"] == 1.0
    assert res.totals["left_unanonymized"] == 0 and res.totals["hidden_as_requested"] >= 3
    assert [p["method"] for p in res.probes] == ["blur"] * 3
    assert all(p["skin_lightness_gap"] is None for p in res.probes)  # measured for swapped faces only
    assert "skin_gap_large" not in res.rates["anonymized"]
    assert all(isinstance(p["reid_dlib"], bool) and isinstance(p["reid_lbph"], bool) for p in res.probes)
    assert sum(p["reid_dlib"] for p in res.probes) / 3 == pytest.approx(res.rates["anonymized"]["reid_dlib"])
    # every recognizer has its row; none was consulted by a blur; the networks re-identify the originals
    rec = res.rates["recognizers"]
    assert set(rec) == {"dlib", "mobilefacenet", "faceres", "mobileface", "facenet", "lbph"}
    assert not any(r["consulted"] for r in rec.values())
    for name in ("dlib", "mobilefacenet", "faceres", "facenet"):
        assert rec[name]["rank1_original"]["rate"] == 1.0, name
        # each probe says whether this network's rank-1 match after anonymization is the person
        assert sum(p["reid_by"][name] for p in res.probes) / 3 == pytest.approx(rec[name]["rank1_anonymized"]["rate"])
        v = rec[name]["verified_far_1e-2"]
        assert v["n"] == 3 and 0.0 <= v["low"] <= v["rate"] <= v["high"] <= 1.0
    assert "consulted by the anonymizer" in res.to_markdown()
    # per probe, every recognizer's score of original vs output; the verified share is read from them
    for name in ("faceres", "mobileface"):
        scores = np.array([p["recognizer_scores"][name] for p in res.probes])
        th = get_recognizer(name).threshold("far_1e-2")
        assert np.mean(scores >= th) == pytest.approx(rec[name]["verified_far_1e-2"]["rate"])
    assert all(p["consulted_after"] is None for p in res.probes)  # nothing consulted for a blur



def test_gender_judge_learns_a_linear_split_and_needs_both_genders() -> None:
    rng = np.random.default_rng(0)
    axis = rng.standard_normal(128)
    male = rng.random(400) < 0.5
    emb = rng.standard_normal((400, 128)) * 0.3 + np.where(male, 1.0, -1.0)[:, None] * axis / np.linalg.norm(axis)
    judge = GenderJudge(emb[:300], male[:300])
    assert (judge.is_male(emb[300:]) == male[300:]).mean() > 0.95
    with pytest.raises(ValueError, match="both genders"):
        GenderJudge(emb[:10], np.ones(10, bool))


def test_fit_gender_judge_reads_utkface_names_and_skips_children(tmp_path: Path) -> None:
    chips = sorted(CHIPS.glob("omi_*.jpg"))[:5]
    for k, (chip, name) in enumerate(zip(chips, ["30_0_0", "41_1_0", "25_0_1", "33_1_2", "9_1_0"], strict=True)):
        img = cv2.copyMakeBorder(cv2.imread(str(chip)), 60, 60, 60, 60, cv2.BORDER_REFLECT)
        cv2.imwrite(str(tmp_path / f"{name}_2017010{k}.jpg.chip.jpg"), img)
    judge = fit_gender_judge(tmp_path, n=10, progress=False)
    assert judge.w.shape == (129,)  # 128 dlib dimensions + bias, fitted on the four adults
    with pytest.raises(InputError, match="both genders"):
        fit_gender_judge(tmp_path, n=10, min_age=35, progress=False)  # only the 41-year-old woman is left


def test_wilson_interval_matches_the_formula() -> None:
    from perface.evaluation.anonymity import wilson_interval

    k, n, z = 3, 150, 1.959963984540054
    p = k / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (
        1 + z * z / n)
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(centre - half, abs=1e-9) and hi == pytest.approx(centre + half, abs=1e-9)
    assert all(np.isnan(wilson_interval(0, 0)))
