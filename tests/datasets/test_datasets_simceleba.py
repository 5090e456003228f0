"""Tests for perface.datasets.simceleba on a byte-exact miniature of the released layout."""

from __future__ import annotations

import io
import tarfile
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from perface.datasets import (
    DatasetError,
    DatasetWarning,
    extract_simceleba,
    load_simceleba,
    read_identity_map,
    read_simceleba_answers,
)

# The first 20 rows of the real triplet_answers.csv, CRLF line endings, byte for byte.
HEAD = (
    b"tripletId,ans1,ans2,ans3\r\nt0000,a,a,b\r\nt0001,b,a,a\r\nt0002,a,a,a\r\nt0003,b,a,b\r\n"
    b"t0004,b,b,b\r\nt0005,a,a,a\r\nt0006,a,a,a\r\nt0007,a,a,a\r\nt0008,a,a,a\r\nt0009,a,a,b\r\n"
    b"t0010,b,a,a\r\nt0011,a,a,b\r\nt0012,a,a,b\r\nt0013,b,b,a\r\nt0014,b,b,a\r\nt0015,a,a,b\r\n"
    b"t0016,a,a,b\r\nt0017,b,b,a\r\nt0018,a,a,a\r\nt0019,a,a,b\r\n"
)
EMPTY = "t0013_c.jpg"  # plays the part of the real release's 0-byte t4963_c.jpg


@pytest.fixture
def release(tmp_path: Path, write_image: Callable[..., Path]) -> Path:
    """A folder like the extracted release: CSV plus t####_{a,b,c}.jpg, one of them 0 bytes."""
    root = tmp_path / "simceleba"
    root.mkdir()
    (root / "triplet_answers.csv").write_bytes(HEAD)
    for i in range(20):
        for side in "abc":
            write_image(root / f"t{i:04d}_{side}.jpg")
    (root / EMPTY).write_bytes(b"")
    return root


def load_quietly(root: Path, **kwargs: object) -> tuple[object, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load_simceleba(root, **kwargs)  # type: ignore[arg-type]
    return result, [w for w in caught if issubclass(w.category, DatasetWarning)]


def test_head_fixture_matches_real_file(shared_data: Path) -> None:
    assert (shared_data / "simcelebA_format" / "triplet_answers_head.csv").read_bytes() == HEAD


def test_answers_parse_crlf(tmp_path: Path) -> None:
    path = tmp_path / "triplet_answers.csv"
    path.write_bytes(HEAD)
    answers = read_simceleba_answers(path)
    assert len(answers) == 20 and answers["t0000"] == ("a", "a", "b") and answers["t0004"] == ("b", "b", "b")


def test_load_drops_empty_image_with_one_warning(release: Path) -> None:
    s, caught = load_quietly(release)
    assert len(s) == 19 and "t0013" not in {t.id for t in s}
    assert len(caught) == 1 and "t0013" in str(caught[0].message) and "empty" in str(caught[0].message)
    t = s[0]
    assert t.id == "t0000" and t.reference.name == "t0000_c.jpg" and t.a.name == "t0000_a.jpg"
    assert (t.votes_a, t.votes_b) == (2, 1) and t.positive.name == "t0000_a.jpg"
    assert s[1].positive.name == "t0001_a.jpg"  # b,a,a: majority a
    assert len(s.d1()) == 19 and len(s.d2()) == 7


def test_unreadable_image_depends_on_verify(release: Path) -> None:
    (release / "t0001_a.jpg").write_bytes(b"not a jpeg at all")
    s, caught = load_quietly(release)
    assert len(s) == 18 and len(caught) == 1 and "t0001_a.jpg: unreadable" in str(caught[0].message)
    s, _ = load_quietly(release, verify="size")
    assert len(s) == 19


def test_missing_image_and_images_in_subfolder(tmp_path: Path, release: Path) -> None:
    (release / "t0002_b.jpg").unlink()
    nested = tmp_path / "outer"
    nested.mkdir()
    (nested / "triplet_answers.csv").write_bytes(HEAD)
    release.rename(nested / "images")
    s, caught = load_quietly(nested)
    assert len(s) == 18 and "t0002_b.jpg: missing" in str(caught[0].message)


def _make_tar(archive: Path, src: Path, inner: str = "simCelebA_triplet") -> None:
    with tarfile.open(archive, "w:gz") as tf:
        for p in sorted(src.glob("t*.jpg")):
            tf.add(p, arcname=f"{inner}/{p.name}")
        info = tarfile.TarInfo("../evil.jpg")  # must never be written outside the cache
        info.size = 3
        tf.addfile(info, io.BytesIO(b"bad"))


def test_load_from_archive(tmp_path: Path, release: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "triplet_answers.csv").write_bytes(HEAD)
    _make_tar(dist / "simCelebA_triplet.tar.gz", release)
    cache = tmp_path / "cache"
    s, caught = load_quietly(dist, cache_dir=cache)
    assert len(s) == 19 and len(caught) == 1
    assert s[0].reference.parent == cache and (cache / EMPTY).stat().st_size == 0
    assert not (tmp_path / "evil.jpg").exists()
    marker = (cache / ".perface-extracted").read_text()
    assert extract_simceleba(dist / "simCelebA_triplet.tar.gz", cache) == cache
    assert (cache / ".perface-extracted").read_text() == marker
    s2, _ = load_quietly(dist / "simCelebA_triplet.tar.gz", cache_dir=cache)  # the archive itself
    assert s2 == s


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"id,ans1,ans2,ans3\r\nt0000,a,a,b\r\n", "bad header"),
        (b"tripletId,ans1,ans2,ans3\r\nt0000,a,c,b\r\n", "line 2: answer 'c'"),
        (b"tripletId,ans1,ans2,ans3\r\nt0000,a,a\r\n", "line 2: expected 4 columns"),
        (b"tripletId,ans1,ans2,ans3\r\nt0000,a,a,b\r\nt0000,a,a,b\r\n", "duplicate"),
        (b"tripletId,ans1,ans2,ans3\r\n", "no triplets"),
        (b"", "empty"),
    ],
)
def test_bad_csv_errors_name_file(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "triplet_answers.csv"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=match) as err:
        read_simceleba_answers(path)
    assert str(path) in str(err.value)


def test_missing_csv_and_missing_images(tmp_path: Path, release: Path) -> None:
    (release / "triplet_answers.csv").unlink()
    with pytest.raises(DatasetError, match="triplet_answers.csv: file not found"):
        load_simceleba(release)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no t####"):
        load_simceleba(empty)
    assert issubclass(DatasetError, ValueError)


def test_identity_map(tmp_path: Path, release: Path) -> None:
    rows = ["tripletId,target,source_a,source_b,source_c"]
    rows += [f"t{i:04d},T{i % 4},S{i}a,S{i}b,S{i}c" for i in range(19)]  # t0019 left out
    mapping = tmp_path / "ids.csv"
    mapping.write_text("\r\n".join(rows) + "\r\n")
    ids = read_identity_map(mapping)
    assert ids["t0001"] == ("T1", ("S1c", "S1a", "S1b"))
    s, caught = load_quietly(release, identities=mapping)
    t0 = s[0]
    assert t0.target_id == "T0" and t0.source_ids == ("S0c", "S0a", "S0b")
    assert s[-1].id == "t0019" and s[-1].target_id is None
    assert len(caught) == 2 and any("t0019" in str(w.message) for w in caught)
    bad = tmp_path / "bad.csv"
    bad.write_text("tripletId,target\nt0000,T0\n")
    with pytest.raises(DatasetError, match="bad header"):
        read_identity_map(bad)
