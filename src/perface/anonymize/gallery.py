"""Donor gallery: one SQLite file of donor faces and their embeddings, with similarity search.

The anonymizer swaps each face for a donor of the same gender and age group whose *perceptual*
embedding is far from the original's, so the gallery stores per donor: attributes (labelled or
predicted), a perceptual embedding (the PerFace model's, any dimension), a 128-d identity embedding
(dlib/face_recognition), the aligned crop the swapper needs (PNG/JPEG bytes) and its 68 landmarks.

Storage is a single SQLite file (stdlib ``sqlite3``): a ``meta`` key/value table (format version,
perceptual model id/fingerprint, dims, creation time) and a ``donors`` table with vectors as float32
BLOBs. A gallery is bound to the perceptual model that produced its vectors: opening it with another
model id fails, because cosine similarities between different embedding spaces are meaningless.

Files are never overwritten unless asked, and new galleries appear atomically: they are written to a
temporary file in the same folder, then renamed (``os.replace``, or ``os.link`` when overwriting is not
allowed, so a file that appeared meanwhile is not clobbered). ``add`` is one SQLite transaction.

Search is by cosine similarity, most similar first or (``order="ascending"``) least similar first,
since donors are picked for LOW similarity. Below ``IndexConfig.threshold`` donors it is exact (numpy
matmul over L2-normalised vectors). Above it, an approximate HNSW index (``usearch``) is built lazily,
partitioned by (gender, age group) so group-filtered searches stay exact in their filtering, and saved
next to the gallery as ``<gallery>.usearch``. That file records a fingerprint (count + CRC32 of keys,
groups and vectors) and the index parameters; it is rebuilt when it no longer matches. ANN candidates
are re-ranked with the exact float32 vectors, so returned similarities are always exact.

Least-similar search with an ANN index: HNSW only answers nearest-neighbour queries, so we search for
the nearest neighbours of ``-q``. For unit vectors ``cos(x, -q) = -cos(x, q)``, hence ordering the
gallery by decreasing similarity to ``-q`` is *exactly* ordering it by increasing similarity to ``q``:
the reduction introduces no error of its own, and the only approximation left is the usual ANN recall
for the query ``-q`` (measured in ``docs/benchmarks/gallery.md``). One caveat: real embeddings often
sit in a cone, so ``-q`` can lie outside the data's region, where HNSW recall may be lower than for
in-distribution queries; the exact re-ranking keeps similarities right, and raising
``expansion_search`` restores recall.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import struct
import threading
import uuid
import warnings
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from perface.face.io import InputError, PerFaceError, publish

if TYPE_CHECKING:
    from usearch.index import Index as UsearchIndex

__all__ = [
    "FORMAT_VERSION",
    "INDEX_SUFFIX",
    "LANDMARK_POINTS",
    "AnnIndex",
    "Donor",
    "Gallery",
    "GalleryError",
    "Group",
    "IndexConfig",
    "SearchResult",
    "build_index",
]

FORMAT_VERSION: Final = 1
LANDMARK_POINTS: Final = 68
INDEX_SUFFIX: Final = ".usearch"
FEATURES_SUFFIX: Final = ".recognizers.npz"  # donors' stored recognizer features (anonymize/donor_features.py)
APPLICATION_ID: Final = 0x50464731  # "PFG1" in SQLite's header, so `file`-like tools can tell galleries apart
REBUILD_HINT: Final = "rebuild it with `perface gallery build`"

Gender = Literal["male", "female"]
AgeGroup = Literal["young", "older"]
AttributeSource = Literal["label", "predicted"]
Order = Literal["descending", "ascending"]
IndexDType = Literal["f32", "f16", "i8"]

GENDERS: Final[tuple[str, str]] = ("male", "female")
AGE_GROUPS: Final[tuple[str, str]] = ("young", "older")
ATTRIBUTE_SOURCES: Final[tuple[str, str]] = ("label", "predicted")
_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC: Final = b"\xff\xd8\xff"
_INDEX_MAGIC: Final = b"PFUSIDX1"
_INDEX_FORMAT: Final = 1

_SCHEMA: Final = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE donors (
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    gender TEXT NOT NULL CHECK (gender IN ('male', 'female')),
    age REAL,
    age_group TEXT NOT NULL CHECK (age_group IN ('young', 'older')),
    attribute_source TEXT NOT NULL CHECK (attribute_source IN ('label', 'predicted')),
    perceptual BLOB NOT NULL,
    identity BLOB NOT NULL,
    crop BLOB NOT NULL,
    landmarks BLOB NOT NULL,
    licence TEXT
);
CREATE INDEX donors_group ON donors (gender, age_group);
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {FORMAT_VERSION};
"""
_DONOR_COLUMNS: Final = (
    "id, source, gender, age, age_group, attribute_source, perceptual, identity, crop, landmarks, licence"
)


class GalleryError(PerFaceError):
    """A gallery file is missing, malformed, incompatible, or an operation on it was refused."""


# ----------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Group:
    """A donor group filter; ``None`` fields match anything."""

    gender: Gender | None = None
    age_group: AgeGroup | None = None

    def __post_init__(self) -> None:
        if self.gender is not None and self.gender not in GENDERS:
            raise ValueError(f"gender must be one of {GENDERS} or None, got {self.gender!r}")
        if self.age_group is not None and self.age_group not in AGE_GROUPS:
            raise ValueError(f"age_group must be one of {AGE_GROUPS} or None, got {self.age_group!r}")

    @classmethod
    def of(cls, group: GroupLike) -> Group:
        """Coerce ``None``, a ``Group`` or a ``(gender, age_group)`` tuple to a ``Group``."""
        if group is None:
            return cls()
        if isinstance(group, Group):
            return group
        gender, age_group = group
        return cls(gender, age_group)  # type: ignore[arg-type]

    def codes(self) -> tuple[int, ...]:
        """Partition codes (``gender_index * 2 + age_group_index``) this filter covers."""
        genders = range(2) if self.gender is None else (GENDERS.index(self.gender),)
        ages = range(2) if self.age_group is None else (AGE_GROUPS.index(self.age_group),)
        return tuple(g * 2 + a for g in genders for a in ages)


GroupLike = Group | tuple[str | None, str | None] | None


def group_code(gender: str, age_group: str) -> int:
    """Partition code of one donor: 0 male/young, 1 male/older, 2 female/young, 3 female/older."""
    return GENDERS.index(gender) * 2 + AGE_GROUPS.index(age_group)


@dataclass(eq=False, slots=True)
class Donor:
    """One donor face as stored in the gallery.

    ``crop`` holds encoded PNG/JPEG bytes of the aligned crop; ``landmarks`` are 68 (x, y) points in
    that crop's pixel coordinates. ``attribute_source`` says whether the gender comes from dataset labels
    (human raters, for the bundled gallery) or from :mod:`perface.face.attributes` (the age may be labelled either way).
    """

    id: str
    source: str
    gender: Gender
    age: float | None
    age_group: AgeGroup
    attribute_source: AttributeSource
    perceptual: NDArray[np.float32]
    identity: NDArray[np.float32]
    crop: bytes
    landmarks: NDArray[np.float32]
    licence: str | None = None

    def __post_init__(self) -> None:
        self.perceptual = np.ascontiguousarray(self.perceptual, dtype=np.float32).reshape(-1)
        self.identity = np.ascontiguousarray(self.identity, dtype=np.float32).reshape(-1)
        self.landmarks = np.ascontiguousarray(self.landmarks, dtype=np.float32)
        self.crop = bytes(self.crop)
        if self.age is not None:
            self.age = float(self.age)
        self.validate()

    def validate(self, perceptual_dim: int | None = None, identity_dim: int | None = None) -> None:
        """Raise ``ValueError`` when a field is malformed (or a vector has the wrong dimension)."""
        where = f"donor {self.id!r}"
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"{where}: id must be a non-empty string")
        if self.gender not in GENDERS:
            raise ValueError(f"{where}: gender must be one of {GENDERS}, got {self.gender!r}")
        if self.age_group not in AGE_GROUPS:
            raise ValueError(f"{where}: age_group must be one of {AGE_GROUPS}, got {self.age_group!r}")
        if self.attribute_source not in ATTRIBUTE_SOURCES:
            raise ValueError(f"{where}: attribute_source must be one of {ATTRIBUTE_SOURCES}")
        if self.age is not None and not (np.isfinite(self.age) and self.age >= 0):
            raise ValueError(f"{where}: age must be a non-negative number or None")
        for name, vector, dim in (
            ("perceptual", self.perceptual, perceptual_dim),
            ("identity", self.identity, identity_dim),
        ):
            if vector.size == 0 or not np.isfinite(vector).all():
                raise ValueError(f"{where}: {name} embedding must be non-empty and finite")
            if dim is not None and vector.size != dim:
                raise ValueError(f"{where}: {name} embedding has {vector.size} dims, the gallery stores {dim}")
        if not np.any(self.perceptual):
            raise ValueError(f"{where}: perceptual embedding is all zeros (no direction for cosine)")
        if self.landmarks.shape != (LANDMARK_POINTS, 2) or not np.isfinite(self.landmarks).all():
            raise ValueError(f"{where}: landmarks must be a finite {LANDMARK_POINTS}x2 array")
        if not (self.crop.startswith(_PNG_MAGIC) or self.crop.startswith(_JPEG_MAGIC)):
            raise ValueError(f"{where}: crop must be PNG or JPEG bytes")

    @property
    def crop_format(self) -> str:
        """``"png"`` or ``"jpeg"``, from the crop's magic bytes."""
        return "png" if self.crop.startswith(_PNG_MAGIC) else "jpeg"

    def crop_rgb(self) -> NDArray[np.uint8]:
        """Decode the crop to an ``[H, W, 3]`` uint8 RGB array."""
        from PIL import Image

        with Image.open(io.BytesIO(self.crop)) as image:
            return np.asarray(image.convert("RGB"))

    @staticmethod
    def encode_crop(image_rgb: NDArray[np.uint8], fmt: Literal["png", "jpeg"] = "png", quality: int = 95) -> bytes:
        """Encode an RGB uint8 array as PNG (lossless, default) or JPEG bytes for ``crop``."""
        from PIL import Image

        buffer = io.BytesIO()
        image = Image.fromarray(np.ascontiguousarray(image_rgb, dtype=np.uint8))
        if fmt == "png":
            image.save(buffer, format="PNG")
        else:
            image.save(buffer, format="JPEG", quality=quality)
        return buffer.getvalue()


class SearchResult(NamedTuple):
    """Donor ids and their cosine similarities to the query, in the requested order."""

    ids: list[str]
    similarities: NDArray[np.float32]


# ----------------------------------------------------------------------------------------------
# Approximate index layer
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """When and how to use the approximate (usearch HNSW) index.

    ``threshold``: galleries with at least this many donors use the ANN index, smaller ones exact
    search. ``connectivity`` (HNSW "M"), ``expansion_add`` ("efConstruction") and ``dtype`` fix the
    built index; ``expansion_search`` ("ef") is a query-time knob. ``dtype`` quantises the stored
    vectors (``f16`` halves, ``i8`` quarters the memory; results are re-ranked exactly anyway).
    ``threads``: build threads (0 = all cores). ``oversample``: the gallery asks the index for
    ``oversample * k`` candidates before the exact re-ranking.

    The defaults are what ``benchmarks/gallery_index.py`` measured (``docs/benchmarks/gallery.md``):
    a wide graph (32) with a cheap construction (40) and i8 storage keeps a 1M build feasible on two
    cores; raise ``expansion_add`` (better graph, slower build) or ``expansion_search`` (better recall,
    slower queries) when there is CPU to spare.
    """

    threshold: int = 50_000
    connectivity: int = 32
    expansion_add: int = 40
    expansion_search: int = 64
    dtype: IndexDType = "i8"
    threads: int = 0
    oversample: int = 2

    def __post_init__(self) -> None:
        if self.dtype not in ("f32", "f16", "i8"):
            raise ValueError(f"dtype must be 'f32', 'f16' or 'i8', got {self.dtype!r}")
        for name in ("threshold", "connectivity", "expansion_add", "expansion_search", "oversample"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.threads < 0:
            raise ValueError("threads must be >= 0")

    def build_params(self) -> dict[str, Any]:
        """Parameters baked into a built index (a saved index with other values is rebuilt)."""
        return {"connectivity": self.connectivity, "expansion_add": self.expansion_add, "dtype": self.dtype}


def _usearch_index_class() -> type[UsearchIndex]:
    """Import usearch's ``Index``, loading onnxruntime first when it is installed.

    Workaround: with usearch 2.26 and onnxruntime 1.30 wheels, importing ``usearch.compiled`` *before*
    onnxruntime makes the later ``import onnxruntime`` crash the interpreter (segmentation fault);
    the other order works. PerFace uses both in one process (detector, attribute networks, gallery).
    """
    with contextlib.suppress(ImportError):
        import onnxruntime  # noqa: F401

    from usearch.index import Index

    return Index


def _normalise_rows(vectors: NDArray[Any]) -> NDArray[np.float32]:
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"expected an [n, dim] matrix, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if matrix.shape[0] and not np.all(norms > 0):
        raise ValueError("zero vectors cannot be compared by cosine similarity")
    return matrix / np.where(norms > 0, norms, 1.0).astype(np.float32)


def _normalise_query(query: NDArray[Any], dim: int) -> NDArray[np.float32]:
    vector = np.asarray(query, dtype=np.float32).reshape(-1)
    if vector.size != dim:
        raise ValueError(f"query has {vector.size} dims, expected {dim}")
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("query vector must be finite and non-zero")
    return vector / np.float32(norm)


def _check_order(order: str) -> bool:
    """Return True for ascending (least similar first)."""
    if order not in ("descending", "ascending"):
        raise ValueError(f"order must be 'descending' or 'ascending', got {order!r}")
    return order == "ascending"


class AnnIndex:
    """Approximate cosine index (usearch HNSW), one sub-index per partition code.

    Keys are unsigned 64-bit integers chosen by the caller (the gallery uses SQLite row keys).
    Least-similar search runs as nearest-neighbour search of the negated query (see module doc).
    """

    def __init__(self, dim: int, config: IndexConfig, partitions: dict[int, UsearchIndex], fingerprint: str = ""):
        self.dim = dim
        self.config = config
        self.partitions = partitions
        self.fingerprint = fingerprint

    def __len__(self) -> int:
        return sum(len(index) for index in self.partitions.values())

    def __repr__(self) -> str:
        sizes = {code: len(index) for code, index in self.partitions.items()}
        return f"AnnIndex(dim={self.dim}, dtype={self.config.dtype!r}, partitions={sizes})"

    @property
    def memory_usage(self) -> int:
        """Bytes usearch reports for all partitions."""
        return sum(int(index.memory_usage) for index in self.partitions.values())

    @staticmethod
    def _new_index(dim: int, config: IndexConfig) -> UsearchIndex:
        index_class = _usearch_index_class()
        return index_class(
            ndim=dim,
            metric="cos",
            dtype=config.dtype,
            connectivity=config.connectivity,
            expansion_add=config.expansion_add,
            expansion_search=config.expansion_search,
        )

    @classmethod
    def build(
        cls,
        vectors: NDArray[Any],
        keys: NDArray[Any] | None = None,
        codes: NDArray[Any] | None = None,
        config: IndexConfig | None = None,
        fingerprint: str = "",
        *,
        progress: bool = False,
    ) -> AnnIndex:
        """Build an index over ``vectors`` (normalised here), split by ``codes`` (default: one partition)."""
        config = config or IndexConfig()
        matrix = _normalise_rows(vectors)
        count, dim = matrix.shape
        key_array = np.arange(count, dtype=np.uint64) if keys is None else np.asarray(keys, dtype=np.uint64)
        code_array = np.zeros(count, dtype=np.int64) if codes is None else np.asarray(codes, dtype=np.int64)
        if key_array.shape != (count,) or code_array.shape != (count,):
            raise ValueError("keys and codes need one entry per vector")
        if len(np.unique(key_array)) != count:
            raise ValueError("keys must be unique")
        partitions: dict[int, UsearchIndex] = {}
        for code in np.unique(code_array).tolist():
            rows = np.flatnonzero(code_array == code)
            # a single partition uses the matrix as is: no second copy of a 1M-row matrix
            block = matrix if len(rows) == count else np.ascontiguousarray(matrix[rows])
            index = cls._new_index(dim, config)
            index.add(key_array[rows], block, threads=config.threads, log=progress)
            partitions[int(code)] = index
        return cls(dim, config, partitions, fingerprint)

    def search(
        self,
        query: NDArray[Any],
        k: int = 10,
        codes: Iterable[int] | None = None,
        order: Order = "descending",
        exclude_keys: Iterable[int] = (),
    ) -> tuple[NDArray[np.uint64], NDArray[np.float32]]:
        """Return up to ``k`` (keys, approximate cosine similarities) in the requested order."""
        ascending = _check_order(order)
        if k < 1:
            return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.float32)
        vector = _normalise_query(query, self.dim)
        if ascending:
            vector = -vector  # nearest to -q == least similar to q (exact identity for cosine)
        excluded = np.fromiter((int(key) for key in exclude_keys), dtype=np.uint64)
        wanted = self.partitions.keys() if codes is None else [c for c in codes if c in self.partitions]
        all_keys: list[NDArray[np.uint64]] = []
        all_distances: list[NDArray[np.float32]] = []
        for code in wanted:
            index = self.partitions[code]
            size = len(index)
            count = min(k + len(excluded), size)
            found_keys, distances = np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.float32)
            while count > 0:
                matches = index.search(vector, count, threads=1)
                found_keys = np.asarray(matches.keys, dtype=np.uint64)
                distances = np.asarray(matches.distances, dtype=np.float32)
                if len(excluded):
                    keep = ~np.isin(found_keys, excluded)
                    found_keys, distances = found_keys[keep], distances[keep]
                if len(found_keys) >= k or count >= size:
                    break
                count = min(count * 2, size)  # exclusions or HNSW misses ate into k: ask for more
            all_keys.append(found_keys)
            all_distances.append(distances)
        if not all_keys:
            return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.float32)
        keys = np.concatenate(all_keys)
        distances = np.concatenate(all_distances)
        top = np.argsort(distances, kind="stable")[:k]
        similarity_to_searched = 1.0 - distances[top]  # usearch "cos" distance is 1 - cosine
        similarities = -similarity_to_searched if ascending else similarity_to_searched
        return keys[top], similarities.astype(np.float32)

    # --- persistence -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write all partitions into one file, atomically (temp file in the same folder + rename)."""
        target = Path(path)
        blobs = {code: index.save() for code, index in self.partitions.items()}
        entries = []
        offset = 0
        for code, blob in blobs.items():
            assert blob is not None
            entries.append({"code": code, "offset": offset, "length": len(blob), "count": len(self.partitions[code])})
            offset += len(blob)
        header = json.dumps(
            {
                "format": _INDEX_FORMAT,
                "dim": self.dim,
                "metric": "cos",
                "fingerprint": self.fingerprint,
                "count": len(self),
                "params": self.config.build_params(),
                "partitions": entries,
            }
        ).encode()
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temporary, "wb") as handle:
                handle.write(_INDEX_MAGIC + struct.pack("<Q", len(header)) + header)
                for blob in blobs.values():
                    handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)

    @staticmethod
    def read_header(path: str | os.PathLike[str]) -> dict[str, Any] | None:
        """The saved index's JSON header, or ``None`` if the file is missing or not an index file."""
        try:
            with open(path, "rb") as handle:
                if handle.read(len(_INDEX_MAGIC)) != _INDEX_MAGIC:
                    return None
                (length,) = struct.unpack("<Q", handle.read(8))
                header: dict[str, Any] = json.loads(handle.read(length))
                header["_data_start"] = len(_INDEX_MAGIC) + 8 + length
                return header
        except (OSError, ValueError, struct.error):
            return None

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], config: IndexConfig | None = None, fingerprint: str | None = None
    ) -> AnnIndex | None:
        """Load a saved index; ``None`` when missing, unreadable, or stale (fingerprint/params differ)."""
        index_class = _usearch_index_class()
        config = config or IndexConfig()
        header = cls.read_header(path)
        if header is None or header.get("format") != _INDEX_FORMAT:
            return None
        if fingerprint is not None and header.get("fingerprint") != fingerprint:
            return None
        if header.get("params") != config.build_params():
            return None
        start = header["_data_start"]
        partitions: dict[int, UsearchIndex] = {}
        try:
            with open(path, "rb") as handle:
                for entry in header["partitions"]:
                    handle.seek(start + entry["offset"])
                    blob = handle.read(entry["length"])
                    if len(blob) != entry["length"]:
                        return None
                    index = index_class.restore(blob)
                    if index is None or len(index) != entry["count"] or index.ndim != header["dim"]:
                        return None
                    index.expansion_search = config.expansion_search
                    partitions[int(entry["code"])] = index
        except (OSError, RuntimeError, ValueError):
            return None
        return cls(int(header["dim"]), config, partitions, str(header.get("fingerprint", "")))


def build_index(
    vectors: NDArray[Any],
    keys: NDArray[Any] | None = None,
    codes: NDArray[Any] | None = None,
    config: IndexConfig | None = None,
    *,
    fingerprint: str = "",
    progress: bool = False,
) -> AnnIndex:
    """Build an :class:`AnnIndex` over raw vectors (the index layer, without a gallery)."""
    return AnnIndex.build(vectors, keys, codes, config, fingerprint, progress=progress)


# ----------------------------------------------------------------------------------------------
# Gallery
# ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _SearchCache:
    """Normalised perceptual vectors ordered by (group code, key): each group is one row slice."""

    keys: NDArray[np.int64]
    ids: list[str]
    codes: NDArray[np.int8]
    matrix: NDArray[np.float32]
    slices: dict[int, tuple[int, int]]
    key_order: NDArray[np.int64]  # argsort of keys, for key -> row lookups
    sorted_keys: NDArray[np.int64]
    fingerprint: str

    def rows_of_keys(self, keys: NDArray[Any]) -> NDArray[np.int64]:
        positions = np.searchsorted(self.sorted_keys, np.asarray(keys, dtype=np.int64))
        return self.key_order[positions]


def _blob(vector: NDArray[np.float32]) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def _vector(blob: bytes) -> NDArray[np.float32]:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def _temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def _remove_quietly(path: Path) -> None:
    for candidate in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(candidate)


def _publish(temporary: Path, target: Path, overwrite: bool) -> None:
    """Move a finished temp file into place; never clobber ``target`` unless ``overwrite``."""
    try:
        publish(temporary, target, overwrite=overwrite)
    except InputError:
        raise GalleryError(f"{target} already exists; pass overwrite=True to replace it") from None
    if overwrite:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(Path(f"{target}{INDEX_SUFFIX}"))  # index of the replaced gallery
        with contextlib.suppress(FileNotFoundError):
            os.unlink(Path(f"{target}{FEATURES_SUFFIX}"))  # its donors' stored features
    with contextlib.suppress(OSError):  # make the rename durable
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class Gallery:
    """A donor gallery in one SQLite file; use :meth:`create`, :meth:`open` or :meth:`building`."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        path: Path,
        *,
        index_path: Path | None,
        readonly: bool,
        index_config: IndexConfig | None = None,
    ) -> None:
        """Wrap an open connection (use the classmethods rather than calling this directly)."""
        self._conn = connection
        self._path = path
        self._index_path = index_path
        self._readonly = readonly
        self.index_config = index_config or IndexConfig()
        self._lock = threading.RLock()
        self._meta = self._read_meta()
        self._cache: _SearchCache | None = None
        self._ann: AnnIndex | None = None

    # --- construction ------------------------------------------------------------------------

    @staticmethod
    def _connect(path: Path, mode: str) -> sqlite3.Connection:
        uri = f"{path.absolute().as_uri()}?mode={mode}"
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA foreign_keys = ON")
        return connection

    @staticmethod
    def _initialise(path: Path, model_id: str, perceptual_dim: int, identity_dim: int) -> None:
        if not model_id:
            raise ValueError("model_id must be a non-empty string (model name + weights hash)")
        if perceptual_dim < 1 or identity_dim < 1:
            raise ValueError("embedding dims must be >= 1")
        connection = Gallery._connect(path, "rwc")
        try:
            connection.executescript(_SCHEMA)
            meta = {
                "format_version": str(FORMAT_VERSION),
                "model_id": model_id,
                "perceptual_dim": str(int(perceptual_dim)),
                "identity_dim": str(int(identity_dim)),
                "landmark_points": str(LANDMARK_POINTS),
                "vector_dtype": "float32-le",
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "generator": "perface.anonymize.gallery",
            }
            connection.execute("BEGIN")
            connection.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
            connection.execute("COMMIT")
        finally:
            connection.close()

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        model_id: str,
        perceptual_dim: int,
        identity_dim: int = 128,
        overwrite: bool = False,
        *,
        index_config: IndexConfig | None = None,
    ) -> Gallery:
        """Create an empty gallery file atomically and open it for writing.

        Raises:
            GalleryError: ``path`` exists and ``overwrite`` is false.
        """
        target = Path(path)
        if target.exists() and not overwrite:
            raise GalleryError(f"{target} already exists; pass overwrite=True to replace it")
        temporary = _temporary_path(target)
        try:
            cls._initialise(temporary, model_id, perceptual_dim, identity_dim)
            _publish(temporary, target, overwrite)
        finally:
            _remove_quietly(temporary)
        return cls.open(target, model_id, index_config=index_config)

    @classmethod
    @contextlib.contextmanager
    def building(
        cls,
        path: str | os.PathLike[str],
        model_id: str,
        perceptual_dim: int,
        identity_dim: int = 128,
        overwrite: bool = False,
        *,
        index_config: IndexConfig | None = None,
    ) -> Iterator[Gallery]:
        """Build a whole gallery in a temp file; it replaces ``path`` only if the block succeeds.

        ``with Gallery.building(path, ...) as gallery: gallery.add(...)``. On any exception the temp
        file is deleted and ``path`` is left untouched.
        """
        target = Path(path)
        if target.exists() and not overwrite:
            raise GalleryError(f"{target} already exists; pass overwrite=True to replace it")
        temporary = _temporary_path(target)
        try:
            cls._initialise(temporary, model_id, perceptual_dim, identity_dim)
            gallery = cls(
                cls._connect(temporary, "rw"),
                temporary,
                index_path=None,
                readonly=False,
                index_config=index_config,
            )
            try:
                yield gallery
            finally:
                gallery.close()
            _publish(temporary, target, overwrite)
        finally:
            _remove_quietly(temporary)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        expected_model_id: str | None = None,
        *,
        readonly: bool = False,
        index_config: IndexConfig | None = None,
    ) -> Gallery:
        """Open an existing gallery, checking its format version and (optionally) its model id.

        Raises:
            GalleryError: missing file, not a gallery, unknown format version, or model id mismatch.
        """
        target = Path(path)
        if not target.is_file():
            raise GalleryError(f"no gallery at {target}")
        try:
            connection = cls._connect(target, "ro" if readonly else "rw")
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as error:
            raise GalleryError(f"{target} is not a PerFace gallery ({error})") from error
        try:
            if not {"meta", "donors"} <= tables:
                raise GalleryError(f"{target} is not a PerFace gallery (no meta/donors tables)")
            gallery = cls(
                connection,
                target,
                index_path=Path(f"{target}{INDEX_SUFFIX}"),
                readonly=readonly,
                index_config=index_config,
            )
            version = gallery._meta.get("format_version", "?")
            if version != str(FORMAT_VERSION):
                newer = version.isdigit() and int(version) > FORMAT_VERSION
                hint = "upgrade perface or " + REBUILD_HINT if newer else REBUILD_HINT
                raise GalleryError(
                    f"{target}: unknown gallery format version {version} (this perface reads version "
                    f"{FORMAT_VERSION}): {hint}"
                )
            if expected_model_id is not None and gallery.model_id != expected_model_id:
                raise GalleryError(
                    f"{target}: gallery built with model {gallery.model_id}, current model is "
                    f"{expected_model_id}: {REBUILD_HINT}"
                )
        except BaseException:
            connection.close()
            raise
        return gallery

    def reconnect(self) -> None:
        """Open a fresh SQLite connection in place of the current one (call it in a process forked from the one
        that opened the gallery: SQLite's advice is that a connection must not cross a fork, so the inherited
        one is kept untouched, not even closed)."""
        with self._lock:
            self._inherited = getattr(self, "_inherited", []) + [self._conn]
            self._conn = self._connect(self._path, "ro" if self._readonly else "rw")

    def close(self) -> None:
        """Close the SQLite connection (the gallery object is unusable afterwards)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Gallery({str(self._path)!r}, model={self.model_id!r}, donors={len(self)})"

    # --- metadata ------------------------------------------------------------------------------

    def _read_meta(self) -> dict[str, str]:
        try:
            return {key: value for key, value in self._conn.execute("SELECT key, value FROM meta")}
        except sqlite3.DatabaseError as error:
            raise GalleryError(f"{self._path}: unreadable meta table ({error})") from error

    @property
    def path(self) -> Path:
        """The gallery file (a temp file while inside :meth:`building`)."""
        return self._path

    @property
    def index_path(self) -> Path | None:
        """Where the ANN index is saved (``<gallery>.usearch``); ``None`` while building."""
        return self._index_path

    @property
    def meta(self) -> dict[str, str]:
        """A copy of the meta table."""
        return dict(self._meta)

    @property
    def format_version(self) -> int:
        return int(self._meta["format_version"])

    @property
    def model_id(self) -> str:
        return self._meta["model_id"]

    @property
    def perceptual_dim(self) -> int:
        return int(self._meta["perceptual_dim"])

    @property
    def identity_dim(self) -> int:
        return int(self._meta["identity_dim"])

    @property
    def created(self) -> str:
        """Creation time, ISO 8601 UTC."""
        return self._meta["created"]

    # --- writing -------------------------------------------------------------------------------

    def add(self, donors: Iterable[Donor], *, batch_size: int = 1000) -> int:
        """Insert donors in one transaction (all or none), ``batch_size`` rows per statement.

        Raises:
            GalleryError: read-only gallery or duplicate donor id (nothing is inserted then).
            ValueError: a malformed donor (nothing is inserted then).
        """
        if self._readonly:
            raise GalleryError(f"{self._path} was opened read-only")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        added = 0
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                seen: set[str] = set()
                batch: list[Donor] = []
                for donor in donors:
                    batch.append(donor)
                    if len(batch) >= batch_size:
                        added += self._insert(batch, seen)
                        batch = []
                if batch:
                    added += self._insert(batch, seen)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            finally:
                self._cache = None
                self._ann = None
        return added

    def _insert(self, batch: list[Donor], seen: set[str]) -> int:
        rows = []
        for donor in batch:
            donor.validate(self.perceptual_dim, self.identity_dim)
            if donor.id in seen:
                raise GalleryError(f"duplicate donor id {donor.id!r} in the added donors")
            seen.add(donor.id)
            rows.append(
                (
                    donor.id,
                    donor.source,
                    donor.gender,
                    donor.age,
                    donor.age_group,
                    donor.attribute_source,
                    _blob(donor.perceptual),
                    _blob(donor.identity),
                    donor.crop,
                    _blob(donor.landmarks),
                    donor.licence,
                )
            )
        ids = [row[0] for row in rows]
        placeholders = ",".join("?" * len(ids))
        existing = self._conn.execute(f"SELECT id FROM donors WHERE id IN ({placeholders}) LIMIT 1", ids).fetchone()
        if existing is not None:
            raise GalleryError(f"donor id {existing[0]!r} is already in {self._path}")
        placeholders = ",".join("?" * 11)
        self._conn.executemany(f"INSERT INTO donors ({_DONOR_COLUMNS}) VALUES ({placeholders})", rows)
        return len(rows)

    # --- reading -------------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM donors").fetchone()[0])

    def __contains__(self, donor_id: object) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM donors WHERE id = ?", (donor_id,)).fetchone() is not None

    @staticmethod
    def _where(group: GroupLike) -> tuple[str, list[str]]:
        wanted = Group.of(group)
        clauses, params = [], []
        if wanted.gender is not None:
            clauses.append("gender = ?")
            params.append(wanted.gender)
        if wanted.age_group is not None:
            clauses.append("age_group = ?")
            params.append(wanted.age_group)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def ids(self, group: GroupLike = None) -> list[str]:
        """Donor ids in insertion order, optionally filtered by group."""
        where, params = self._where(group)
        with self._lock:
            return [row[0] for row in self._conn.execute(f"SELECT id FROM donors{where} ORDER BY key", params)]

    def ages(self, group: GroupLike = None) -> dict[str, float]:
        """Donor id -> age in years, optionally filtered by group (cheap: no embeddings or crops are read)."""
        where, params = self._where(group)
        with self._lock:
            return {row[0]: float(row[1]) for row in self._conn.execute(f"SELECT id, age FROM donors{where}", params)}

    def attribute_sources(self) -> dict[str, str]:
        """Donor id -> where its gender came from, "label" or "predicted" (cheap: reads that column only)."""
        with self._lock:
            return {row[0]: row[1] for row in self._conn.execute("SELECT id, attribute_source FROM donors")}

    def identity_of(self, donor_id: str) -> NDArray[np.float32]:
        """One donor's identity embedding (reads that column only, not the crop); ``KeyError`` if absent."""
        with self._lock:
            row = self._conn.execute("SELECT identity FROM donors WHERE id = ?", (donor_id,)).fetchone()
        if row is None:
            raise KeyError(donor_id)
        return _vector(row[0])

    @staticmethod
    def _donor(row: Sequence[Any]) -> Donor:
        return Donor(
            id=row[0],
            source=row[1],
            gender=row[2],
            age=row[3],
            age_group=row[4],
            attribute_source=row[5],
            perceptual=_vector(row[6]),
            identity=_vector(row[7]),
            crop=row[8],
            landmarks=_vector(row[9]).reshape(LANDMARK_POINTS, 2),
            licence=row[10],
        )

    def get(self, donor_id: str) -> Donor:
        """The donor with this id; ``KeyError`` if absent."""
        with self._lock:
            row = self._conn.execute(f"SELECT {_DONOR_COLUMNS} FROM donors WHERE id = ?", (donor_id,)).fetchone()
        if row is None:
            raise KeyError(donor_id)
        return self._donor(row)

    def donors(
        self, gender: Gender | None = None, age_group: AgeGroup | None = None, *, page_size: int = 256
    ) -> Iterator[Donor]:
        """Iterate donors in insertion order, optionally filtered, fetching ``page_size`` rows at a time."""
        where, params = self._where(Group(gender, age_group))
        where = f"{where} AND key > ?" if where else " WHERE key > ?"
        last = -1
        while True:
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT key, {_DONOR_COLUMNS} FROM donors{where} ORDER BY key LIMIT ?",
                    [*params, last, page_size],
                ).fetchall()
            for row in rows:
                yield self._donor(row[1:])
            if len(rows) < page_size:
                return
            last = rows[-1][0]

    def _matrix(self, column: str, dim: int, group: GroupLike) -> NDArray[np.float32]:
        where, params = self._where(group)
        with self._lock:
            blobs = [row[0] for row in self._conn.execute(f"SELECT {column} FROM donors{where} ORDER BY key", params)]
        if not blobs:
            return np.empty((0, dim), dtype=np.float32)
        return np.frombuffer(b"".join(blobs), dtype="<f4").astype(np.float32).reshape(len(blobs), dim)

    def perceptual_matrix(self, group: GroupLike = None, normalized: bool = False) -> NDArray[np.float32]:
        """Perceptual embeddings as an ``[n, dim]`` float32 matrix, rows in ``ids(group)`` order."""
        matrix = self._matrix("perceptual", self.perceptual_dim, group)
        return _normalise_rows(matrix) if normalized else matrix

    def identity_matrix(self, group: GroupLike = None) -> NDArray[np.float32]:
        """Identity embeddings as an ``[n, identity_dim]`` float32 matrix, rows in ``ids(group)`` order."""
        return self._matrix("identity", self.identity_dim, group)

    # --- search --------------------------------------------------------------------------------

    def _search_cache(self) -> _SearchCache:
        with self._lock:
            if self._cache is not None:
                return self._cache
            rows = self._conn.execute("SELECT key, id, gender, age_group, perceptual FROM donors").fetchall()
        count, dim = len(rows), self.perceptual_dim
        keys = np.fromiter((row[0] for row in rows), dtype=np.int64, count=count)
        codes = np.fromiter((group_code(row[2], row[3]) for row in rows), dtype=np.int8, count=count)
        order = np.lexsort((keys, codes))
        keys, codes = keys[order], codes[order]
        ids = [rows[i][1] for i in order.tolist()]
        raw = b"".join(rows[i][4] for i in order.tolist())
        del rows
        matrix = _normalise_rows(np.frombuffer(raw, dtype="<f4").reshape(count, dim))
        slices: dict[int, tuple[int, int]] = {}
        for code in range(4):
            start, stop = np.searchsorted(codes, [code, code + 1])
            if stop > start:
                slices[code] = (int(start), int(stop))
        crc = zlib.crc32(keys.tobytes())
        crc = zlib.crc32(codes.tobytes(), crc)
        crc = zlib.crc32(matrix.tobytes(), crc)
        fingerprint = f"n={count};dim={dim};model={self.model_id};crc32={crc:08x}"
        key_order = np.argsort(keys, kind="stable")
        cache = _SearchCache(keys, ids, codes, matrix, slices, key_order, keys[key_order], fingerprint)
        with self._lock:
            self._cache = cache
        return cache

    def uses_ann(self) -> bool:
        """Whether searches on this gallery go through the approximate index (size >= threshold)."""
        return len(self) >= self.index_config.threshold

    def build_index(self, force: bool = False) -> AnnIndex:
        """Load the saved ANN index if it matches the gallery, else build (and save) it."""
        cache = self._search_cache()
        with self._lock:
            if not force and self._ann is not None and self._ann.fingerprint == cache.fingerprint:
                return self._ann
            ann = None
            if not force and self._index_path is not None and self._index_path.exists():
                ann = AnnIndex.load(self._index_path, self.index_config, cache.fingerprint)
            if ann is None:
                ann = AnnIndex.build(cache.matrix, cache.keys, cache.codes, self.index_config, cache.fingerprint)
                if self._index_path is not None and not self._readonly:
                    try:
                        ann.save(self._index_path)
                    except OSError as error:
                        warnings.warn(f"could not save the ANN index to {self._index_path}: {error}", stacklevel=2)
            self._ann = ann
            return ann

    def _exclude_keys(self, exclude_ids: Iterable[str]) -> NDArray[np.int64]:
        wanted = list(dict.fromkeys(exclude_ids))
        keys: list[int] = []
        with self._lock:
            for start in range(0, len(wanted), 900):
                chunk = wanted[start : start + 900]
                placeholders = ",".join("?" * len(chunk))
                keys.extend(
                    row[0] for row in self._conn.execute(f"SELECT key FROM donors WHERE id IN ({placeholders})", chunk)
                )
        return np.asarray(keys, dtype=np.int64)

    def search(
        self,
        query_vec: NDArray[Any],
        k: int = 10,
        group: GroupLike = None,
        exclude_ids: Iterable[str] = (),
        order: Order = "descending",
        *,
        exact: bool | None = None,
    ) -> SearchResult:
        """Find the ``k`` donors most (or, ``order="ascending"``, least) cosine-similar to ``query_vec``.

        Args:
            query_vec: A perceptual embedding (any scale; it is L2-normalised here).
            k: How many donors to return (fewer if the group has fewer).
            group: Restrict to a ``Group`` / ``(gender, age_group)``; ``None`` fields match all.
            exclude_ids: Donor ids never to return (e.g. the person being anonymized).
            order: ``"descending"`` (most similar first) or ``"ascending"`` (least similar first).
            exact: Force exact (True) or approximate (False) search; default: approximate when the
                gallery has ``index_config.threshold`` donors or more, unless ``k`` covers most of the group.

        Returns:
            ``SearchResult(ids, similarities)``, similarities exact cosines sorted per ``order``.
        """
        ascending = _check_order(order)
        query = _normalise_query(query_vec, self.perceptual_dim)
        codes = Group.of(group).codes()
        if k < 1:
            return SearchResult([], np.empty(0, dtype=np.float32))
        cache = self._search_cache()
        excluded = self._exclude_keys(exclude_ids)
        use_ann = (len(cache.keys) >= self.index_config.threshold) if exact is None else not exact
        candidates_total = sum(stop - start for code, (start, stop) in cache.slices.items() if code in codes)
        if exact is None and k * self.index_config.oversample >= candidates_total:
            use_ann = False  # asking for (nearly) the whole group: a full exact ranking is cheaper and exact
        if use_ann and len(cache.keys):
            ann = self.build_index()
            keys, _ = ann.search(query, k * self.index_config.oversample, codes, order, excluded.tolist())
            rows = cache.rows_of_keys(keys)
            similarities = cache.matrix[rows] @ query  # exact re-ranking of the ANN candidates
        else:
            spans = [cache.slices[code] for code in codes if code in cache.slices]
            rows = np.concatenate([np.arange(start, stop) for start, stop in spans] or [np.empty(0, np.int64)])
            similarities = np.concatenate(
                [cache.matrix[start:stop] @ query for start, stop in spans] or [np.empty(0, np.float32)]
            )
            if len(excluded):
                keep = ~np.isin(cache.keys[rows], excluded)
                rows, similarities = rows[keep], similarities[keep]
        if len(rows) == 0:
            return SearchResult([], np.empty(0, dtype=np.float32))
        score = similarities if ascending else -similarities
        candidates = np.argpartition(score, k - 1)[:k] if len(rows) > k else np.arange(len(rows))
        best = candidates[np.lexsort((cache.keys[rows[candidates]], score[candidates]))]
        return SearchResult([cache.ids[i] for i in rows[best].tolist()], similarities[best].astype(np.float32))
