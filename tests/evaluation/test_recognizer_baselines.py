"""perface.evaluation.recognizer_baselines: the face networks' identity embeddings as Sec. 4.5 baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perface.datasets import LabelledFace

CHIPS = sorted((Path(__file__).parents[1] / "data" / "chips").glob("omi_*.jpg"))
NETS = ("mobileface", "faceres")


def test_each_network_embeds_the_largest_face_and_the_result_is_cached(tmp_path, monkeypatch):
    from perface.evaluation import recognizer_baselines as rb
    from perface.face.detect import REFERENCE_DETECT, detect
    from perface.face.io import read_image
    from perface.face.recognizers import get_recognizer

    paths = [str(p) for p in CHIPS[:3]]
    got = rb.recognizer_embeddings(paths, NETS, cache_dir=tmp_path, progress=False)
    image = read_image(paths[1])
    face = max(detect(image, REFERENCE_DETECT), key=lambda f: f.width * f.height)
    for n in NETS:
        assert sorted(got[n]) == sorted(paths)
        want = get_recognizer(n).embed(image, [face])[0]
        assert np.allclose(got[n][paths[1]], want, atol=1e-5)
        assert abs(np.linalg.norm(got[n][paths[0]]) - 1) < 1e-4
    assert len(list(tmp_path.glob("recognizer-*.npz"))) == 2
    chunked = rb.recognizer_embeddings(paths, NETS, cache_dir=None, progress=False, chunk=2)  # 2 chunks, no cache
    assert all(np.allclose(chunked[n][p], got[n][p], atol=1e-5) for n in NETS for p in paths)

    def no_network(name):
        raise AssertionError(f"{name} was run again although its embeddings are cached")

    monkeypatch.setattr(rb, "get_recognizer", no_network)
    again = rb.recognizer_embeddings(paths, NETS, cache_dir=tmp_path, progress=False)
    assert all(np.array_equal(again[n][p], got[n][p]) for n in NETS for p in paths)
    assert rb.recognizer_label("faceres") == "FaceRes identity"


@pytest.mark.skipif(len(CHIPS) < 16, reason="needs 16 test chips")
def test_the_group_protocol_reports_every_network_and_the_best_baseline(tmp_path):
    """Four cells of 3 faces (2 in the group, 1 query): a row per network, intervals, and the floor line."""
    from perface.evaluation.protocols import AFTER, BEFORE, attribute_group_protocol
    from perface.metric.model import load

    faces = [LabelledFace(path=p, gender=("male", "female")[i % 2], age=None, young=(i // 2) % 2 == 0)
             for i, p in enumerate(CHIPS[:16])]
    res = attribute_group_protocol(load("default"), faces, "chips", cache_dir=str(tmp_path), per_group=2,
                                   n_queries_per_group=1, progress=False, recognizers=NETS)
    assert list(res.reports) == [BEFORE, AFTER, "MobileFace identity", "FaceRes identity"]
    assert all(r.n_queries == 4 for r in res.reports.values())
    best = res.best_baselines()
    s = res.summary()
    assert best["gender"][1] == max(s[k]["gender"] for k in s if k != AFTER)
    md = res.to_markdown()
    assert "| FaceRes identity | " in md and "Best identity baseline per task (gender: " in md
    assert "MobileFace identity P" not in md  # the Table 4 layout keeps the paper's pair


def test_an_unknown_baseline_network_is_a_one_line_error():
    from typer.testing import CliRunner

    from perface.cli import app

    out = CliRunner().invoke(app, ["evaluate", "--no-triplets", "--recognizers", "faceres,nope"])
    assert out.exit_code == 2
    assert "--recognizers: unknown recognizer 'nope'" in out.stderr and "Traceback" not in out.output
