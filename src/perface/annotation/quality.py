"""Quality control as in the paper: catch trials flag careless annotators, whose votes are then left out;
plus the agreement figures of the admin page (Krippendorff's alpha from the ``krippendorff`` library)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from .db import Annotator, TripletRow, Vote, transaction
from .project import AnnotationSettings, Project

__all__ = ["AnnotatorStats", "ProjectSummary", "catch_results", "flagged_ids", "krippendorff_alpha",
           "summarize", "valid_votes"]


def catch_results(session: Session) -> dict[int, tuple[int, int]]:
    """``{annotator id: (correct, answered)}`` over catch trials."""
    correct = func.sum(case((Vote.answer == TripletRow.catch_answer, 1), else_=0))
    rows = session.execute(
        select(Vote.annotator_id, correct, func.count(Vote.id))
        .join(TripletRow, TripletRow.id == Vote.triplet_id)
        .where(TripletRow.kind == "catch")
        .group_by(Vote.annotator_id)
    ).all()
    return {a: (int(c or 0), int(n)) for a, c, n in rows}


def is_flagged(correct: int, answered: int, threshold: float) -> bool:
    """Whether a catch record fails the threshold (no catch answered yet: not flagged)."""
    return answered > 0 and correct / answered < threshold - 1e-12


def flagged_ids(session: Session, settings: AnnotationSettings) -> set[int]:
    """Annotators whose votes do not count: below the catch threshold, or deactivated."""
    out = {a for a, (c, n) in catch_results(session).items() if is_flagged(c, n, settings.catch_threshold)}
    out |= set(session.scalars(select(Annotator.id).where(Annotator.active.is_(False))))
    return out


def valid_votes(session: Session, settings: AnnotationSettings) -> dict[int, list[tuple[int, str]]]:
    """``{real triplet id: [(annotator id, answer), ...]}`` in answer order, flagged annotators left out."""
    bad = flagged_ids(session, settings)
    rows = session.execute(
        select(Vote.triplet_id, Vote.annotator_id, Vote.answer)
        .join(TripletRow, TripletRow.id == Vote.triplet_id)
        .where(TripletRow.kind == "real")
        .order_by(Vote.created, Vote.id)
    ).all()
    out: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for tid, aid, ans in rows:
        if aid not in bad:
            out[tid].append((aid, ans))
    return dict(out)


def krippendorff_alpha(votes: dict[int, list[tuple[int, str]]]) -> float | None:
    """Krippendorff's alpha (nominal) of the annotators x triplets answers; None when not computable."""
    import krippendorff

    annotators = sorted({a for vs in votes.values() for a, _ in vs})
    items = [t for t, vs in votes.items() if len(vs) >= 2]
    if len(annotators) < 2 or not items:
        return None
    data = np.full((len(annotators), len(items)), np.nan)
    row = {a: i for i, a in enumerate(annotators)}
    for j, t in enumerate(items):
        for a, ans in votes[t]:
            data[row[a], j] = 1.0 if ans == "a" else 0.0
    try:
        value = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    except (ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) else None


@dataclass
class AnnotatorStats:
    """One annotator's row on the admin page."""

    id: int
    name: str
    votes: int
    catch_correct: int
    catch_answered: int
    median_rt_ms: float | None
    flagged: bool

    @property
    def catch_accuracy(self) -> float | None:
        """Share of catch trials answered correctly (None before the first)."""
        return self.catch_correct / self.catch_answered if self.catch_answered else None


@dataclass
class ProjectSummary:
    """Progress and agreement of a project, valid votes only (what the admin page shows)."""

    n_real: int
    n_catch: int
    votes_per_triplet: int
    total_votes: int
    valid_votes: int
    histogram: dict[int, int]  # valid votes per real triplet -> number of triplets
    complete: int  # real triplets with at least K valid votes
    unanimous: int  # complete triplets whose first K valid votes agree
    alpha: float | None
    annotators: list[AnnotatorStats] = field(default_factory=list)

    @property
    def unanimity_rate(self) -> float | None:
        """Share of complete triplets with unanimous votes (D2's share; 0.25 at random with K=3)."""
        return self.unanimous / self.complete if self.complete else None

    @property
    def progress(self) -> float:
        """Valid votes collected over the K x real triplets wanted."""
        want = self.n_real * self.votes_per_triplet
        got = sum(min(n, self.votes_per_triplet) * c for n, c in self.histogram.items())
        return min(1.0, got / want) if want else 0.0


def summarize(project: Project) -> ProjectSummary:
    """Everything the admin page and ``perface annotate status`` show."""
    k = project.settings.votes_per_triplet
    with transaction(project.engine, read_only=True) as s:
        kinds = Counter(s.scalars(select(TripletRow.kind)))
        valid = valid_votes(s, project.settings)
        catches = catch_results(s)
        bad = flagged_ids(s, project.settings)
        per = s.execute(select(Vote.annotator_id, Vote.rt_ms)).all()
        annotators = s.execute(select(Annotator.id, Annotator.name).order_by(Annotator.id)).all()
    real_ids_counts = [len(v) for v in valid.values()]
    hist = Counter(real_ids_counts)
    hist[0] += kinds.get("real", 0) - len(valid)
    complete = [vs[:k] for vs in valid.values() if len(vs) >= k]
    rts: dict[int, list[int]] = defaultdict(list)
    for a, rt in per:
        rts[a].append(rt)
    stats = [AnnotatorStats(a, name, len(rts.get(a, [])), *catches.get(a, (0, 0)),
                            float(np.median(rts[a])) if rts.get(a) else None, a in bad)
             for a, name in annotators]
    return ProjectSummary(
        n_real=kinds.get("real", 0), n_catch=kinds.get("catch", 0), votes_per_triplet=k,
        total_votes=len(per), valid_votes=sum(real_ids_counts),
        histogram={n: c for n, c in sorted(hist.items()) if c},
        complete=len(complete), unanimous=sum(len({ans for _, ans in vs}) == 1 for vs in complete),
        alpha=krippendorff_alpha(valid), annotators=stats)
