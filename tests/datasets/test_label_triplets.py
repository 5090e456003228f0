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


def test_gender_first_triplets_rank_gender_over_the_age_group_and_leave_the_default_set_alone(utk_folder):
    base = LabelTripletConfig(root=str(utk_folder), train_fraction=0.6, n_triplets=400)
    mixed = label_triplets(LabelTripletConfig(**{**base.__dict__, "gender_first": 0.5}))
    gf = [t for t in mixed if _cell(t.reference) != _cell(t.positive)]
    assert 120 < len(gf) < 280  # about half
    for t in gf:  # positive: same gender, other age group; negative: other gender, same age group
        (g, y), (gp, yp), (gn, yn) = _cell(t.reference), _cell(t.positive), _cell(t.negative)
        assert gp == g and yp != y and gn != g and yn == y
    plain = label_triplets(base)
    assert all(_cell(t.reference) == _cell(t.positive) for t in plain)
    assert [(t.reference, t.positive, t.negative) for t in plain] == \
        [(t.reference, t.positive, t.negative) for t in label_triplets(LabelTripletConfig(**base.__dict__))]


def test_gender_first_window_keeps_both_faces_near_the_anchors_age_where_it_can(utk_folder):
    cfg = LabelTripletConfig(root=str(utk_folder), train_fraction=0.6, n_triplets=300, gender_first=1.0,
                             gender_first_window=6)
    train = [str(f.path) for f in labelled_training_faces(cfg)]
    age = {p: parse_utkface_name(p).age for p in train}
    kept = 0
    for t in label_triplets(cfg):
        a = age[str(t.reference)]
        for face, cell in ((str(t.positive), _cell(t.positive)), (str(t.negative), _cell(t.negative))):
            near = [g for g in train if _cell(g) == cell and abs(age[g] - a) <= 6]
            assert abs(age[face] - a) <= 6 or not near
            kept += bool(near)
    assert kept > 100  # the window applied to many of them (anchors near the age-group boundary)


def test_balanced_anchors_come_evenly_from_the_four_cells(tmp_path):
    for i in range(60):  # 48 young women, 4 faces in each other cell
        age, g = (20, 1) if i < 48 else ((60, 1), (20, 0), (60, 0))[i % 3]
        (tmp_path / f"{age}_{g}_0_2017010{i:04d}.jpg.chip.jpg").write_bytes(b"")
    cfg = LabelTripletConfig(root=str(tmp_path), train_fraction=1.0, n_triplets=800)
    def young_women(ts):
        return sum(_cell(t.reference) == ("female", True) for t in ts) / len(ts)
    assert young_women(label_triplets(cfg)) > 0.7  # anchors follow the faces: 48 of 60
    assert 0.18 < young_women(label_triplets(LabelTripletConfig(**{**cfg.__dict__, "balanced": True}))) < 0.32


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
