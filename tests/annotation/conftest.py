"""A small annotation project without the swapper: plain coloured images stand in for swapped faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")

from perface.annotation.db import TripletRow, transaction  # noqa: E402
from perface.annotation.project import AnnotationSettings, Project, create_project  # noqa: E402


def make_project(root: Path, n_real: int = 12, n_catch: int = 2, settings: AnnotationSettings | None = None,
                 db: str | None = None) -> tuple[Project, str]:
    """A project with `n_real` real and `n_catch` catch triplets (catch answer: 'a'), tiny JPEG images.

    Triplet i has target ``T{i % 3}`` and the source group ``S{i // 3}``: groups crossed with targets, as in SimCelebA.
    """
    project, admin = create_project(root, settings or AnnotationSettings(), db=db)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_real + n_catch):
        kind = "real" if i < n_real else "catch"
        code = f"t{i:04d}" if kind == "real" else f"c{i - n_real:04d}"
        for side in "abc":
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(project.images / f"{code}_{side}.jpg")
        rows.append(TripletRow(code=code, kind=kind, target=f"T{i % 3}", source_a=f"S{i // 3}a", source_b=f"S{i // 3}b",
                               source_c=f"S{i // 3}c", catch_answer="a" if kind == "catch" else None))
    with transaction(project.engine) as s:
        s.add_all(rows)
    return project, admin


@pytest.fixture
def project(tmp_path: Path) -> tuple[Project, str]:
    """12 real triplets, 2 catch trials, K = 3, a catch trial every 5th item."""
    return make_project(tmp_path / "proj", settings=AnnotationSettings(catch_share=0.2))


def code_of(project: Project, assignment_id: int) -> str:
    """The triplet code behind an assignment (tests only: the browser never sees it)."""
    from perface.annotation.db import Assignment

    with transaction(project.engine) as s:
        a = s.get(Assignment, assignment_id)
        return s.get(TripletRow, a.triplet_id).code


def answer_all(project: Project, annotator_id: int, choose, limit: int = 1000) -> list[str]:
    """Answer every item the annotator is given with ``choose(code) -> 'a'|'b'``; returns the codes seen."""
    from perface.annotation.assign import next_item, record_vote

    seen = []
    for _ in range(limit):
        item = next_item(project, annotator_id)
        if item is None:
            break
        code = code_of(project, item.assignment_id)
        seen.append(code)
        assert record_vote(project, annotator_id, item.assignment_id, choose(code), 1500)
    return seen


def annotator_id(project: Project, name: str) -> int:
    """The id of an annotator by name."""
    from sqlalchemy import select

    from perface.annotation.db import Annotator

    with transaction(project.engine) as s:
        return s.scalar(select(Annotator.id).where(Annotator.name == name))
