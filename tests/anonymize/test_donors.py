"""perface.anonymize.donors: a gallery built from donor images keeps what the swapper and the selector need."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from perface.anonymize.donors import DonorBuildConfig, build_gallery, combine_labels, omi_labels, read_labels
from perface.anonymize.gallery import Gallery
from perface.face.io import InputError
from perface.metric.model import ModelConfig, PerFaceModel

CHIPS = Path(__file__).parents[1] / "data" / "chips"


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    m = PerFaceModel(ModelConfig(embed_dim=8, hidden=16))
    m.model_id = "perface:test"
    return m


def test_build_gallery_with_labels(tmp_path, small_model):
    paths = sorted(CHIPS.glob("omi_*.jpg"))[:4] + [tmp_path / "empty.jpg"]
    paths[-1].write_bytes(b"")
    labels = tmp_path / "labels.csv"
    labels.write_text(f"image,gender,age\n{paths[0].name},female,33\n")
    rep = build_gallery(paths, tmp_path / "g.sqlite", small_model, DonorBuildConfig(min_face_px=40, max_yaw=40),
                        labels=read_labels(labels))
    assert rep.added + len(rep.skipped) == 5
    assert any("empty" in why for _, why in rep.skipped)
    with Gallery.open(tmp_path / "g.sqlite", "perface:test") as g:
        assert len(g) == rep.added >= 3
        d = g.get(paths[0].stem)
        assert (d.gender, d.age, d.age_group, d.attribute_source) == ("female", 33.0, "young", "label")
        crop = d.crop_rgb()
        assert d.landmarks.shape == (68, 2)
        assert (d.landmarks >= -1).all() and (d.landmarks[:, 0] <= crop.shape[1]).all()
        assert np.isclose(np.linalg.norm(d.identity), 1, atol=1e-4)
        other = g.get(paths[1].stem)
        assert other.attribute_source == "predicted" and other.gender in ("male", "female")


def test_gallery_of_another_model_is_refused(tmp_path, small_model):
    build_gallery(sorted(CHIPS.glob("omi_*.jpg"))[:2], tmp_path / "g.sqlite", small_model,
                  DonorBuildConfig(min_face_px=40, max_yaw=40))
    from perface.anonymize.gallery import GalleryError

    with pytest.raises(GalleryError, match="rebuild"):
        Gallery.open(tmp_path / "g.sqlite", "perface:another")


def test_bad_labels(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("image,gender\nx.jpg,robot\n")
    with pytest.raises(InputError, match="male or female"):
        read_labels(p)
    p.write_text("file,gender\n")
    with pytest.raises(InputError, match="'image' column"):
        read_labels(p)


def test_omi_labels_keep_clear_genders_and_rated_age(tmp_path):
    root = tmp_path / "omi"
    root.mkdir()
    (root / "attribute_means.csv").write_text(
        "stimulus,trustworthy,age,gender\n1,40,50.4,86.9\n2,55,31.0,12.6\n3,50,24.0,55.0\n4,50,,20\n")
    labels = omi_labels(root)
    assert labels["1.jpg"] == ("male", 50.4)
    assert labels["2.jpg"] == ("female", 31.0)
    assert labels["3.jpg"] == (None, 24.0)  # raters undecided: left to the predictor
    assert labels["4.jpg"] == ("female", None)
    assert omi_labels(root, clear_margin=2.0)["3.jpg"][0] == "male"
    with pytest.raises(InputError, match="not found"):
        omi_labels(tmp_path / "nowhere")


def test_unclear_predicted_gender_is_skipped_but_a_label_is_trusted(tmp_path, small_model, monkeypatch):
    from perface.face import attributes

    unsure = attributes.Attributes(gender="female", gender_confidence=0.6, age=30.0, age_group="young")
    monkeypatch.setattr(attributes, "predict_attributes", lambda crops, boxes=None: [unsure] * len(crops))
    paths = sorted(CHIPS.glob("omi_*.jpg"))[:2]
    labels = {paths[0].name: ("male", None)}
    rep = build_gallery(paths, tmp_path / "g.sqlite", small_model, DonorBuildConfig(min_face_px=40, max_yaw=40),
                        labels=labels)
    assert rep.added == 1
    assert [(Path(p).name, why.split(" (")[0]) for p, why in rep.skipped] == [(paths[1].name, "gender unclear")]
    with Gallery.open(tmp_path / "g.sqlite", "perface:test") as g:
        d = g.get(paths[0].stem)
        assert (d.gender, d.age, d.attribute_source) == ("male", 30.0, "label")  # the source is the gender's
    rep = build_gallery(paths[1:], tmp_path / "g2.sqlite", small_model,
                        DonorBuildConfig(min_face_px=40, max_yaw=40, min_gender_confidence=0.5))
    assert rep.added == 1


def test_a_labelled_age_does_not_make_a_predicted_gender_a_label(tmp_path, small_model, monkeypatch):
    """Raters unclear about gender but not age (OMI): the gender is the predictor's, and the record says so."""
    from perface.face import attributes

    sure = attributes.Attributes(gender="female", gender_confidence=0.97, age=30.0, age_group="young")
    monkeypatch.setattr(attributes, "predict_attributes", lambda crops, boxes=None: [sure] * len(crops))
    path = sorted(CHIPS.glob("omi_*.jpg"))[0]
    build_gallery([path], tmp_path / "g.sqlite", small_model, DonorBuildConfig(min_face_px=40, max_yaw=40),
                  labels={path.name: (None, 52.0)})
    with Gallery.open(tmp_path / "g.sqlite", "perface:test") as g:
        d = g.get(path.stem)
        assert (d.gender, d.age, d.age_group, d.attribute_source) == ("female", 52.0, "older", "predicted")
        assert g.attribute_sources() == {path.stem: "predicted"}


def test_min_gender_confidence_must_be_a_probability_of_the_chosen_label():
    with pytest.raises(ValueError, match="min_gender_confidence"):
        DonorBuildConfig(min_gender_confidence=0.3)
    assert DonorBuildConfig(min_gender_confidence=0.5).min_gender_confidence == 0.5


def test_combine_labels_later_source_wins_where_it_gives_a_value():
    omi = {"1.jpg": ("male", 50.4), "3.jpg": (None, 24.0)}
    csv_labels = {"1.jpg": (None, 47.0), "3.jpg": ("female", None), "9.jpg": ("female", 30.0)}
    assert combine_labels(omi, csv_labels) == {"1.jpg": ("male", 47.0), "3.jpg": ("female", 24.0),
                                               "9.jpg": ("female", 30.0)}
    assert combine_labels() == {}


def test_face_sharpness_ignores_resolution_and_catches_blur():
    import cv2

    from perface.anonymize.donors import face_sharpness
    from perface.face.detect import detect
    from perface.face.io import read_image
    from perface.face.landmarks import predict_landmarks68

    image = read_image(CHIPS / "omi_10.jpg")
    face = max(detect(image), key=lambda f: f.width * f.height)
    lm = predict_landmarks68(image, face.box)
    sharp = face_sharpness(image, lm)
    upsampled = face_sharpness(cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC), lm * 2)
    blurred = face_sharpness(cv2.GaussianBlur(image, (0, 0), 2.0), lm)
    assert sharp > 30 > blurred  # the default threshold sits between them
    assert abs(upsampled - sharp) < 0.2 * sharp  # measured at a fixed eye distance, not per pixel
    assert face_sharpness(image, np.zeros((68, 2))) == 0.0  # degenerate landmarks: no reading, not a crash


def test_blurry_donors_are_skipped(tmp_path, small_model):
    import cv2

    src = CHIPS / "omi_10.jpg"
    soft = tmp_path / "soft.jpg"
    cv2.imwrite(str(soft), cv2.GaussianBlur(cv2.imread(str(src)), (0, 0), 2.0))
    cfg = DonorBuildConfig(min_face_px=40, max_yaw=40)
    rep = build_gallery([src, soft], tmp_path / "g.sqlite", small_model, cfg)
    assert rep.added == 1
    assert [(Path(p).name, why.split(" (")[0]) for p, why in rep.skipped] == [("soft.jpg", "face too blurry")]
    rep = build_gallery([soft], tmp_path / "g2.sqlite", small_model, DonorBuildConfig(min_face_px=40, max_yaw=40,
                                                                                       min_sharpness=0))
    assert rep.added == 1  # 0 turns the check off
    with pytest.raises(ValueError, match="min_sharpness"):
        DonorBuildConfig(min_sharpness=-1)
