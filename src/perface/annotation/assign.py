"""Who answers what next: K valid votes per triplet, fewest first, catch trials mixed in; votes and undo.

Every step is one database transaction, so a vote acknowledged to the browser is committed, and a retry
of the same vote is recognised (never counted twice). Handing out a triplet reads counts and then
writes, so it runs serialised (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL).

Samplers: ``fewest`` (default) gives the triplet with the fewest valid votes (ties in a seeded random
order); ``agreement`` first completes triplets whose votes so far agree, so that a project stopped
early has more complete unanimous (D2) triplets. No library sampler is used: active samplers such as
cblearn's choose *which triplets to ask* over one item set to fit an embedding, while here the
triplets are fixed images built in advance and the only choice is which one gets the next vote.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

from sqlalchemy import case, delete, func, select, true
from sqlalchemy.exc import IntegrityError

from .db import Annotator, Assignment, TripletRow, Vote, transaction
from .project import Project, hash_token
from .quality import flagged_ids

__all__ = ["Item", "VoteRefused", "annotator_for_token", "next_item", "record_vote", "undo_last"]


class VoteRefused(Exception):
    """A vote that cannot be accepted; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Item:
    """The triplet an annotator should answer now (the browser sees only the assignment id)."""

    assignment_id: int
    answered: int
    remaining: int
    can_undo: bool


def annotator_for_token(project: Project, token: str) -> tuple[int, str] | None:
    """``(id, name)`` of the active annotator holding `token`, or None."""
    with transaction(project.engine, read_only=True) as s:
        row = s.execute(select(Annotator.id, Annotator.name, Annotator.active)
                        .where(Annotator.token_hash == hash_token(token))).first()
    return (row[0], row[1]) if row and row[2] else None


def _real_counts(s, project: Project, me: int, now: float) -> dict[int, tuple[int, int]]:
    """``{real triplet id: (valid votes + live reservations by others, votes for 'a')}``."""
    bad = flagged_ids(s, project.settings)
    real = s.scalars(select(TripletRow.id).where(TripletRow.kind == "real"))
    counts: dict[int, list[int]] = {t: [0, 0] for t in real}
    rows = s.execute(select(Vote.triplet_id, func.count(Vote.id), func.sum(case((Vote.answer == "a", 1), else_=0)))
                     .join(TripletRow, TripletRow.id == Vote.triplet_id)
                     .where(TripletRow.kind == "real", Vote.annotator_id.not_in(bad) if bad else true())
                     .group_by(Vote.triplet_id)).all()
    for t, n, n_a in rows:
        counts[t] = [int(n), int(n_a or 0)]
    live = s.execute(select(Assignment.triplet_id, func.count(Assignment.id))
                     .where(Assignment.status == "open", Assignment.annotator_id != me,
                            Assignment.annotator_id.not_in(bad) if bad else true(),
                            Assignment.created > now - project.settings.assignment_ttl_s)
                     .group_by(Assignment.triplet_id)).all()
    for t, n in live:
        if t in counts:
            counts[t][0] += n
    return {t: (c[0], c[1]) for t, c in counts.items()}


def next_item(project: Project, annotator_id: int) -> Item | None:
    """The annotator's open triplet, or a new one; None when nothing is left for them."""
    cfg = project.settings
    now = time.time()
    with transaction(project.engine, serialize=True) as s:
        me = s.get(Annotator, annotator_id)
        answered = s.scalar(select(func.count(Vote.id)).where(Vote.annotator_id == annotator_id)) or 0
        can_undo = me.undo_vote_id is not None
        current = s.scalar(select(Assignment).where(Assignment.annotator_id == annotator_id,
                                                    Assignment.status == "open").order_by(Assignment.id.desc()))
        seen = set(s.scalars(select(Assignment.triplet_id).where(Assignment.annotator_id == annotator_id)))
        counts = _real_counts(s, project, annotator_id, now)
        k = cfg.votes_per_triplet
        open_real = [t for t, (n, _) in counts.items() if n < k and t not in seen]
        if current is not None:
            return Item(current.id, answered, len(open_real), can_undo)
        kinds = dict(s.execute(select(TripletRow.kind, func.count(Vote.id))
                               .join(Vote, Vote.triplet_id == TripletRow.id)
                               .where(Vote.annotator_id == annotator_id).group_by(TripletRow.kind)).all())
        n_catch = kinds.get("catch", 0)
        rng = random.Random(f"{annotator_id}:{answered}")
        pick = None
        if open_real and n_catch < math.floor(cfg.catch_share * (answered + 1) + 1e-9):
            catches = [t for t in s.scalars(select(TripletRow.id).where(TripletRow.kind == "catch")) if t not in seen]
            pick = rng.choice(catches) if catches else None
        if pick is None and open_real:
            def key(t: int) -> tuple:
                n, n_a = counts[t]
                contested = 0 < n_a < n
                primary = (contested, -n) if cfg.sampler == "agreement" else (n,)
                return (*primary, rng.random())
            pick = min(open_real, key=key)
        if pick is None:
            return None
        a = Assignment(annotator_id=annotator_id, triplet_id=pick, created=now, status="open")
        s.add(a)
        s.flush()
        return Item(a.id, answered, len(open_real), can_undo)


def assignment_image(project: Project, token: str, assignment_id: int) -> str | None:
    """The triplet code behind an assignment of the active annotator holding `token` (None if it is not
    theirs); one query, as images are most of the requests."""
    with transaction(project.engine, read_only=True) as s:
        row = s.execute(select(TripletRow.code).join(Assignment, Assignment.triplet_id == TripletRow.id)
                        .join(Annotator, Annotator.id == Assignment.annotator_id)
                        .where(Assignment.id == assignment_id, Annotator.token_hash == hash_token(token),
                               Annotator.active.is_(True))).first()
    return row[0] if row else None


def record_vote(project: Project, annotator_id: int, assignment_id: int, answer: str, rt_ms: int) -> bool:
    """Store one answer in one transaction; True if new, False for a retry of the same answer.

    Refused (:class:`VoteRefused`): a triplet not assigned to this annotator (403), an answer that differs
    from one already given (409), or a stale assignment whose triplet has meanwhile got its K votes (409).
    """
    if answer not in ("a", "b"):
        raise VoteRefused(422, "answer must be 'a' or 'b'")
    if not 0 <= rt_ms <= 3_600_000:
        raise VoteRefused(422, "response time out of range")
    now = time.time()
    for attempt in range(2):
        try:
            with transaction(project.engine) as s:
                q = select(Assignment).where(Assignment.id == assignment_id)
                if project.engine.dialect.name == "postgresql":
                    q = q.with_for_update()
                a = s.scalar(q)
                if a is None or a.annotator_id != annotator_id:
                    raise VoteRefused(403, "this triplet is not assigned to you")
                if a.status == "done":
                    old = s.scalar(select(Vote.answer).where(Vote.assignment_id == a.id))
                    if old == answer:
                        return False
                    raise VoteRefused(409, "this triplet was already answered differently")
                if a.created < now - project.settings.assignment_ttl_s:
                    counts = _real_counts(s, project, annotator_id, now)
                    if counts.get(a.triplet_id, (0, 0))[0] >= project.settings.votes_per_triplet:
                        s.delete(a)
                        raise VoteRefused(409, "this triplet expired and has all its votes; take the next one")
                vote = Vote(annotator_id=annotator_id, triplet_id=a.triplet_id, assignment_id=a.id,
                            answer=answer, rt_ms=int(rt_ms), created=now)
                s.add(vote)
                a.status = "done"
                s.flush()
                s.get(Annotator, annotator_id).undo_vote_id = vote.id
            return True
        except IntegrityError:
            if attempt:  # the concurrent twin of this request committed first: answer as for a retry
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def undo_last(project: Project, annotator_id: int) -> bool:
    """Remove the annotator's last answer (once) and show that triplet again; False if nothing to undo."""
    with transaction(project.engine, serialize=True) as s:
        me = s.get(Annotator, annotator_id)
        vote = s.get(Vote, me.undo_vote_id) if me.undo_vote_id is not None else None
        me.undo_vote_id = None
        if vote is None or vote.annotator_id != annotator_id:
            return False
        s.execute(delete(Assignment).where(Assignment.annotator_id == annotator_id, Assignment.status == "open"))
        a = s.get(Assignment, vote.assignment_id)
        s.delete(vote)
        s.flush()
        a.status, a.created = "open", time.time()
    return True
