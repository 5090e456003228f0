"""An annotation project: a folder with ``project.json``, ``images/`` and (by default) ``project.sqlite``.

The votes live in the database named by ``project.json`` (SQLite in the folder, or a PostgreSQL URL);
``PERFACE_ANNOTATE_DB`` overrides it, so a password need not be written to disk.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import select
from sqlalchemy.engine import Engine

from perface.face.io import InputError, PerFaceError

from .db import Annotator, Meta, make_engine, transaction

__all__ = [
    "AnnotationSettings",
    "Project",
    "create_project",
    "hash_token",
    "open_project",
]

PROJECT_FILE = "project.json"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")


@dataclass(frozen=True)
class AnnotationSettings:
    """How votes are collected and checked (stored in the database, fixed at creation).

    ``votes_per_triplet``: K, the votes each real triplet gets (the paper: 3). ``catch_share``: share of
    the items an annotator sees that are catch trials. ``catch_threshold``: the catch accuracy an
    annotator needs for their votes to count (the paper: 1.0, all correct). ``sampler``: ``fewest``
    (fewest valid votes first) or ``agreement`` (finish triplets whose votes agree so far first).
    ``assignment_ttl_s``: after this, an unanswered triplet no longer holds a vote slot for others.
    """

    votes_per_triplet: int = 3
    catch_share: float = 0.1
    catch_threshold: float = 1.0
    sampler: Literal["fewest", "agreement"] = "fewest"
    assignment_ttl_s: float = 900.0

    def __post_init__(self) -> None:
        if not 1 <= self.votes_per_triplet <= 50:
            raise PerFaceError(f"votes per triplet must be 1..50, got {self.votes_per_triplet}")
        if not 0 <= self.catch_share < 1:
            raise PerFaceError(f"catch share must be in [0, 1), got {self.catch_share}")
        if not 0 <= self.catch_threshold <= 1:
            raise PerFaceError(f"catch threshold must be in [0, 1], got {self.catch_threshold}")
        if self.sampler not in ("fewest", "agreement"):
            raise PerFaceError(f"sampler must be 'fewest' or 'agreement', got {self.sampler!r}")


def hash_token(token: str) -> str:
    """SHA-256 hex of a token (tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Project:
    """An open project: its folder, engine and settings."""

    root: Path
    engine: Engine
    settings: AnnotationSettings
    secret: str

    @property
    def images(self) -> Path:
        """Folder of the triplet images ``<code>_{a,b,c}.jpg``."""
        return self.root / "images"

    def image_path(self, code: str, side: str) -> Path:
        """The image of one side of a triplet, refusing anything that would leave ``images/``."""
        if not re.fullmatch(r"[tc]\d{4,8}", code) or side not in ("a", "b", "c"):
            raise InputError(None, f"bad image name {code!r}/{side!r}")
        base = self.images.resolve()
        path = (base / f"{code}_{side}.jpg").resolve()
        if not path.is_relative_to(base):
            raise InputError(None, f"bad image name {code!r}/{side!r}")
        return path

    def invite(self, name: str) -> str:
        """Add an annotator and return their new secret token (shown once; only its hash is kept)."""
        if not NAME_RE.fullmatch(name or ""):
            raise PerFaceError(f"annotator name {name!r}: use 1-64 letters, digits, space, . _ @ -")
        token = secrets.token_urlsafe(24)
        with transaction(self.engine) as s:
            if s.scalar(select(Annotator).where(Annotator.name == name)) is not None:
                raise PerFaceError(f"annotator {name!r} already exists")
            s.add(Annotator(name=name, token_hash=hash_token(token)))
        return token

    def new_admin_token(self) -> str:
        """Replace the admin token; the old one stops working."""
        token = secrets.token_urlsafe(24)
        with transaction(self.engine) as s:
            s.merge(Meta(key="admin_token_hash", value=hash_token(token)))
        return token

    def admin_hash(self) -> str:
        """The stored hash of the admin token."""
        with transaction(self.engine, read_only=True) as s:
            return s.get(Meta, "admin_token_hash").value


def _db_url(root: Path, db: str | None) -> str:
    if db:
        if not db.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
            raise PerFaceError(f"--db {db!r}: expected a sqlite:/// or postgresql:// URL")
        return db
    return f"sqlite:///{(root / 'project.sqlite').resolve()}"


def create_project(root: str | os.PathLike[str], settings: AnnotationSettings | None = None,
                   db: str | None = None) -> tuple[Project, str]:
    """Create an empty project folder and database; returns the project and its admin token."""
    root = Path(root)
    if (root / PROJECT_FILE).exists():
        raise InputError(root, "a project already exists here")
    if root.exists() and any(root.iterdir()):
        raise InputError(root, "folder exists and is not empty")
    settings = settings or AnnotationSettings()
    (root / "images").mkdir(parents=True, exist_ok=True)
    url = _db_url(root, db)
    engine = make_engine(url)
    secret = secrets.token_hex(32)
    with transaction(engine) as s:
        if s.get(Meta, "settings") is not None:
            raise InputError(root, f"the database {url.split('@')[-1]} already holds a project")
        s.add(Meta(key="settings", value=json.dumps(dataclasses.asdict(settings))))
        s.add(Meta(key="secret", value=secret))
        s.add(Meta(key="admin_token_hash", value=""))
    (root / PROJECT_FILE).write_text(json.dumps({"db": db or "sqlite:///project.sqlite", "format": 1}, indent=1))
    project = Project(root, engine, settings, secret)
    return project, project.new_admin_token()


def open_project(root: str | os.PathLike[str]) -> Project:
    """Open an existing project folder (its database URL from ``project.json`` or ``PERFACE_ANNOTATE_DB``)."""
    root = Path(root)
    meta_file = root / PROJECT_FILE
    if not meta_file.is_file():
        raise InputError(root, f"not an annotation project (no {PROJECT_FILE}); see `perface annotate create`")
    try:
        info = json.loads(meta_file.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(meta_file, f"invalid JSON ({exc})") from None
    db = os.environ.get("PERFACE_ANNOTATE_DB") or info.get("db", "")
    url = _db_url(root, None if db in ("", "sqlite:///project.sqlite") else db)
    engine = make_engine(url)
    with transaction(engine) as s:
        row, secret = s.get(Meta, "settings"), s.get(Meta, "secret")
        if row is None or secret is None:
            raise InputError(root, "the project database holds no project")
        settings = AnnotationSettings(**json.loads(row.value))
        secret_value = secret.value
    return Project(root, engine, settings, secret_value)
