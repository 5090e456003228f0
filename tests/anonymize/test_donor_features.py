"""perface.anonymize.donor_features: stored donor features equal computed ones, and a stale file is never used."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from perface.anonymize import donor_features
from perface.anonymize.anonymizer import default_gallery_path
from perface.anonymize.gallery import Gallery
from perface.face.recognizers import get_recognizer


@pytest.fixture(scope="module")
def bundled():
    with Gallery.open(default_gallery_path(), readonly=True) as g:
        yield g


@pytest.mark.parametrize("name", ["mobilefacenet", "mobileface", "faceres"])
def test_the_bundled_gallery_ships_features_equal_to_computed_ones(bundled, name):
    rec = get_recognizer(name)
    stored = donor_features.load(bundled, rec)
    ids = bundled.ids()
    assert sorted(stored) == sorted(ids)
    for donor_id in ids[::80]:
        d = bundled.get(donor_id)
        fresh = donor_features.donor_features(rec, d.crop_rgb(), d.landmarks)
        assert np.abs(fresh - stored[donor_id]).max() <= donor_features.TOLERANCE


def test_write_then_load_and_a_stale_file_is_ignored(tmp_path, bundled):
    path = tmp_path / "g.sqlite"
    shutil.copy(default_gallery_path(), path)
    rec = get_recognizer("mobileface")  # the cheap network: 317 donors in about a second
    with Gallery.open(path, readonly=True) as g:
        assert donor_features.load(g, rec) == {}  # no file yet
        seen = []
        written = donor_features.write(g, [rec], on_progress=lambda done, total: seen.append((done, total)))
        assert written == donor_features.sidecar_path(path) and seen[-1] == (len(g), len(g))
        stored = donor_features.load(g, rec)
        assert len(stored) == len(g)
        assert donor_features.load(g, get_recognizer("mobilefacenet")) == {}  # not stored for that one
        data = dict(np.load(written))
        first = sorted(g.ids())[0]
        data["mobileface"][list(data["ids"]).index(first)] += 0.01  # as if the network had changed
        np.savez(written, **data)
        with pytest.warns(UserWarning, match="differ from recomputed"):
            assert donor_features.load(g, rec) == {}
        data["ids"] = data["ids"][:-1]
        data["mobileface"] = data["mobileface"][:-1]
        np.savez(written, **data)
        with pytest.warns(UserWarning, match="do not match the gallery"):
            assert donor_features.load(g, rec) == {}


def test_the_bundled_gallery_ships_the_donors_skin_lightness(bundled):
    from perface.anonymize.swap import skin_lightness

    stored = donor_features.load_skin(bundled)
    assert sorted(stored) == sorted(bundled.ids())
    for donor_id in bundled.ids()[::60]:
        d = bundled.get(donor_id)
        assert stored[donor_id] == skin_lightness(d.crop_rgb(), d.landmarks)


def test_the_bundled_gallery_ships_the_donors_gender_readings(bundled):
    """FaceRes's P(male) of each donor is stored, equals a fresh reading, and mostly agrees with the gallery's gender
    (step 2 leaves out the donors it does not read clearly as theirs)."""
    stored = donor_features.load_p_male(bundled)
    assert sorted(stored) == sorted(bundled.ids())
    for donor_id in bundled.ids()[::60]:
        d = bundled.get(donor_id)
        assert abs(stored[donor_id] - donor_features.donor_p_male(d.crop_rgb(), d.landmarks)) <= 1e-4
    male = set(bundled.ids(("male", None)))
    agree = [(p > 0.5) == (i in male) for i, p in stored.items()]
    assert np.mean(agree) > 0.85


@pytest.mark.parametrize(("key", "shift", "message", "reader"), [
    (donor_features.SKIN, 1.0, "skin lightness differs", donor_features.load_skin),
    (donor_features.P_MALE, 0.01, "gender readings differ", donor_features.load_p_male),
])
def test_stale_stored_values_are_ignored(tmp_path, key, shift, message, reader):
    path = tmp_path / "g.sqlite"
    shutil.copy(default_gallery_path(), path)
    shutil.copy(donor_features.sidecar_path(default_gallery_path()), donor_features.sidecar_path(path))
    with Gallery.open(path, readonly=True) as g:
        assert len(reader(g)) == len(g)
        data = dict(np.load(donor_features.sidecar_path(path)))
        first = sorted(g.ids())[0]
        data[key][list(data["ids"]).index(first)] += shift
        np.savez(donor_features.sidecar_path(path), **data)
        with pytest.warns(UserWarning, match=message):
            assert reader(g) == {}
