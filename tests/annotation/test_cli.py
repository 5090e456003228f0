"""The `perface annotate` commands: they parse, call the library and exit 2 on bad input."""

from __future__ import annotations

from typer.testing import CliRunner

from perface.cli import app

from .conftest import annotator_id, answer_all


def test_invite_status_export(project, tmp_path) -> None:
    p, _ = project
    runner = CliRunner()
    r = runner.invoke(app, ["annotate", "invite", str(p.root), "ann1", "--url", "http://example.org:9000/"])
    assert r.exit_code == 0 and r.stdout.startswith("http://example.org:9000/a/")
    assert runner.invoke(app, ["annotate", "invite", str(p.root), "ann1"]).exit_code == 2  # exists
    assert runner.invoke(app, ["annotate", "invite", str(p.root), "../x"]).exit_code == 2  # bad name
    for name in ("ann2", "ann3"):
        runner.invoke(app, ["annotate", "invite", str(p.root), name])
    for name in ("ann1", "ann2", "ann3"):
        answer_all(p, annotator_id(p, name), lambda code: "a")
    r = runner.invoke(app, ["annotate", "status", str(p.root)])
    assert r.exit_code == 0 and "12 of 12 triplets complete" in r.stdout and "unanimity 1.000" in r.stdout
    out = tmp_path / "release"
    r = runner.invoke(app, ["annotate", "export", str(p.root), "-o", str(out), "--subset", "d1"])
    assert r.exit_code == 0 and "12 triplets" in r.stdout and "subset: d1" in (out / "train.yaml").read_text()
    r = runner.invoke(app, ["annotate", "export", str(p.root), "-o", str(out)])
    assert r.exit_code == 2 and "not empty" in r.stderr


def test_not_a_project(tmp_path) -> None:
    r = CliRunner().invoke(app, ["annotate", "status", str(tmp_path)])
    assert r.exit_code == 2 and "not an annotation project" in r.stderr
