"""Export: the SimCelebA release layout, read back by the project's own SimCelebA reader and trainer."""

from __future__ import annotations

import pytest

from perface.annotation.export import export_project, write_train_yaml
from perface.annotation.project import AnnotationSettings
from perface.datasets import load_simceleba
from perface.face.io import PerFaceError

from .conftest import annotator_id, answer_all, make_project


@pytest.fixture
def voted(tmp_path):
    p, _ = make_project(tmp_path / "p", n_real=9, n_catch=2, settings=AnnotationSettings(catch_share=0.25))
    for name in ("ann1", "ann2", "ann3", "careless"):
        p.invite(name)
    answer_all(p, annotator_id(p, "careless"), lambda code: "b")  # votes first, then gets flagged
    answer_all(p, annotator_id(p, "ann1"), lambda code: "a")
    answer_all(p, annotator_id(p, "ann2"), lambda code: "a")
    answer_all(p, annotator_id(p, "ann3"), lambda code: "a" if code < "t0003" else "b")
    return p


def test_layout_and_crlf(voted, tmp_path) -> None:
    out = tmp_path / "release"
    rep = export_project(voted, out)
    assert rep["triplets"] == 9 and rep["flagged"] == 1
    raw = (out / "triplet_answers.csv").read_bytes()
    assert raw.startswith(b"tripletId,ans1,ans2,ans3\r\n") and raw.count(b"\r\n") == 10
    assert b"t0000,a,a,a\r\n" in raw and b"t0005,a,a,b\r\n" in raw  # the careless 'b' votes are not there
    assert (out / "triplet_identities.csv").read_text().splitlines()[0] == "tripletId,target,source_a,source_b,source_c"
    assert sorted(p.name for p in out.glob("t*_*.jpg"))[:3] == ["t0000_a.jpg", "t0000_b.jpg", "t0000_c.jpg"]
    assert not list(out.glob("c*_*.jpg")), "catch trials are not part of the release"
    assert "careless" not in (out / "annotators.csv").read_text()  # pseudonyms only
    with pytest.raises(PerFaceError):
        export_project(voted, out)  # never overwrites silently


def test_reader_gets_votes_identities_and_splits(voted, tmp_path) -> None:
    out = tmp_path / "release"
    export_project(voted, out)
    ts = load_simceleba(out)
    assert len(ts) == 9 and len(ts.d2()) == 3 and len(ts.d1()) == 9
    t = next(iter(ts))
    assert t.target_id == "T0" and t.source_ids == ("S0c", "S0a", "S0b")
    parts = ts.split_by_identity("ii", fraction=0.34)
    assert len(parts["test"]) > 0 and len(parts["train"]) > 0


def test_train_config_reads_the_export(voted, tmp_path) -> None:
    from perface.metric.train import load_config, make_splits

    out = tmp_path / "release"
    export_project(voted, out, subset="d1", split="ii")
    cfg = load_config(out / "train.yaml")
    assert cfg.data.kind == "simceleba" and cfg.data.root == str(out.resolve()) and cfg.data.split == "ii"
    splits = make_splits(cfg.data)
    test_targets = {t.target_id for t in splits.test}
    assert test_targets and not test_targets & {t.target_id for t in splits.train}


def test_default_train_yaml_validates_on_unseen_sources(voted, tmp_path) -> None:
    from perface.metric.train import load_config, make_splits

    out = tmp_path / "release"
    export_project(voted, out, subset="d1")
    cfg = load_config(out / "train.yaml")
    assert cfg.data.split == "iii" and cfg.init_from == "default" and cfg.optim.keep == "best"
    alt = load_config(out / "train-identity.yaml")  # the same data, a head from the identity metric
    assert alt.data == cfg.data and alt.init_from is None and alt.model.identity_dim == 128
    splits = make_splits(cfg.data)  # validation and test triplets: source groups never seen in training
    seen = {s for t in splits.train for s in t.source_ids}
    assert splits.val and splits.test
    assert all(seen.isdisjoint(t.source_ids) for t in [*splits.val, *splits.test])
    write_train_yaml(out, subset="d2", split="random")  # a rewrite keeps the folder, changes only the file
    assert load_config(out / "train.yaml").data.subset == "d2" and (out / "triplet_answers.csv").is_file()


def test_nothing_to_export(tmp_path) -> None:
    p, _ = make_project(tmp_path / "p", n_real=2, n_catch=0)
    with pytest.raises(PerFaceError, match="no triplet"):
        export_project(p, tmp_path / "out")
