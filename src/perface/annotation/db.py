"""The project's tables and database engine, through SQLAlchemy (one code path for SQLite and PostgreSQL).

Why SQLAlchemy rather than plain SQL: the same queries and schema run on SQLite (one file, the default)
and on PostgreSQL (a real multi-user deployment, ``postgresql://`` URL), with pooled connections and
explicit transactions. SQLite runs in WAL mode with ``synchronous=FULL`` (a committed vote survives a
crash) and every transaction starts with ``BEGIN IMMEDIATE``, so writers queue instead of failing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

__all__ = [
    "Annotator",
    "Assignment",
    "Base",
    "Meta",
    "TripletRow",
    "Vote",
    "make_engine",
    "transaction",
]


class Base(DeclarativeBase):
    """Declarative base of the annotation tables."""


class Meta(Base):
    """Key/value project settings (JSON text), the CSRF secret and the admin token's hash."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class TripletRow(Base):
    """One triplet: ``kind`` is ``real`` or ``catch``; images are ``images/<code>_{a,b,c}.jpg``."""

    __tablename__ = "triplets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    kind: Mapped[str] = mapped_column(String(8), index=True)
    target: Mapped[str] = mapped_column(String(255))
    source_a: Mapped[str] = mapped_column(String(255))
    source_b: Mapped[str] = mapped_column(String(255))
    source_c: Mapped[str] = mapped_column(String(255))
    catch_answer: Mapped[str | None] = mapped_column(String(1), nullable=True)  # the correct side of a catch trial


class Annotator(Base):
    """An invited annotator; only the SHA-256 of the invite token is stored."""

    __tablename__ = "annotators"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[float] = mapped_column(Float, default=time.time)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    undo_vote_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the vote that "undo" may remove


class Assignment(Base):
    """A triplet shown to an annotator: ``open`` until answered, then ``done``; one per pair."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("annotator_id", "triplet_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    triplet_id: Mapped[int] = mapped_column(ForeignKey("triplets.id"), index=True)
    created: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(8), index=True)


class Vote(Base):
    """One answer: ``a`` or ``b``, with the response time; unique per annotator and triplet."""

    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("annotator_id", "triplet_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    triplet_id: Mapped[int] = mapped_column(ForeignKey("triplets.id"), index=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), unique=True)
    answer: Mapped[str] = mapped_column(String(1))
    rt_ms: Mapped[int] = mapped_column(Integer)
    created: Mapped[float] = mapped_column(Float)


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for a ``sqlite:///`` or ``postgresql://`` URL, with the tables created if missing."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
            dbapi_conn.isolation_level = None  # let the "begin" hook below open transactions
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn) -> None:  # noqa: ANN001 - SQLAlchemy connection
            read_only = conn.get_execution_options().get("perface_read_only")
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
    else:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    Base.metadata.create_all(engine)
    return engine


_sessions: dict[tuple[int, bool], sessionmaker] = {}


@contextmanager
def transaction(engine: Engine, *, serialize: bool = False, read_only: bool = False) -> Iterator[Session]:
    """A session inside one transaction: committed on success, rolled back on any error.

    ``serialize`` takes a transaction-wide lock on PostgreSQL (SQLite's ``BEGIN IMMEDIATE`` already
    serialises writers), for steps that read counts and then write (handing out triplets).
    ``read_only`` (SQLite): a deferred ``BEGIN``, so readers run alongside the writer (WAL).
    """
    maker = _sessions.get((id(engine), read_only))
    if maker is None:
        bind = engine.execution_options(perface_read_only=True) if read_only else engine
        maker = _sessions[(id(engine), read_only)] = sessionmaker(bind, expire_on_commit=False)
    with maker() as session, session.begin():
        if serialize and engine.dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(2121)"))
        yield session
