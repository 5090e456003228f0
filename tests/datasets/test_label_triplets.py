"""perface.datasets.label_triplets: triplets from gender and age labels, drawn from the training part only."""

from __future__ import annotations

import pytest

from perface.datasets import (
    DatasetError,
    LabelTripletConfig,
    in_training_part,
    label_triplets,
    labelled_training_faces,
    parse_utkface_name,
)


@pytest.fixture
def utk_folder(tmp_path):
    """An UTKFace-named folder: 40 ages x 2 genders, empty files (only the names are read)."""
    for i, age in enumerate(range(5, 85, 2)):
        for g in (0, 1):
            (tmp_path / f"{age}_{g}_{i % 5}_2017010{i:04d}{g}.jpg.chip.jpg").write_bytes(b"")
    return tmp_path


def _cell(path):
    f = parse_utkface_name(path)
    return f.gender, f.young


def test_positives_share_the_cell_negatives_differ_and_only_training_faces_are_used(utk_folder):
    cfg = LabelTripletConfig(root=str(utk_folder), train_fraction=0.6, n_triplets=300, age_window=10)
    ts = label_triplets(cfg)
    train = {str(f.path) for f in labelled_training_faces(cfg)}
    assert len(ts) == 300 and 0 < len(train) < 80
    kinds = set()
    for t in ts:
        assert {str(t.reference), str(t.positive), str(t.negative)} <= train
        assert t.reference != t.positive
        assert _cell(t.reference) == _cell(t.positive)
        ref, neg = _cell(t.reference), _cell(t.negative)
        assert ref != neg
        kinds.add((ref[0] != neg[0], ref[1] != neg[1]))
        a, p = parse_utkface_name(t.reference).age, parse_utkface_name(t.positive).age
        close = [g for g in train if g != str(t.reference) and _cell(g) == ref
                 and abs(parse_utkface_name(g).age - a) <= 10]
        assert abs(a - p) <= 10 or not close  # within the age window wherever such a face exists
    assert kinds == {(True, False), (False, True), (True, True)}  # gender, age group, or both differ
    assert [t.id for t in label_triplets(cfg)] == [t.id for t in ts]  # seeded


def test_the_split_is_fixed_by_name_and_people_stay_on_one_side(utk_folder):
    cfg = LabelTripletConfig(root=str(utk_folder), train_fraction=0.3)
    faces = labelled_training_faces(cfg)
    assert all(in_training_part(f, 0.3) for f in faces)
    smaller = {str(f.path) for f in labelled_training_faces(LabelTripletConfig(root=str(utk_folder),
                                                                               train_fraction=0.15))}
    assert smaller <= {str(f.path) for f in faces}  # a smaller training part is inside a larger one
    from perface.datasets import LabelledFace

    same_person = [LabelledFace(path=f"/x/{i}.jpg", gender="male", age=None, young=True, identity="42")
                   for i in range(20)]
    assert len({in_training_part(f, 0.5) for f in same_person}) == 1


def test_a_missing_cell_is_a_clear_error(tmp_path):
    for i in range(6):
        (tmp_path / f"{20 + i}_0_0_2017010{i:04d}.jpg.chip.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match="cell"):
        label_triplets(LabelTripletConfig(root=str(tmp_path), train_fraction=1.0, n_triplets=5))
