"""Tests for perface.datasets.csv_triplets (anchor,positive,negative[,weight])."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from perface.datasets import DatasetError, DatasetWarning, load_csv_triplets


@pytest.fixture
def folder(tmp_path: Path, write_image: Callable[..., Path]) -> Path:
    for name in ("x.jpg", "y.jpg", "z.jpg", "sub/w.jpg"):
        write_image(tmp_path / name)
    return tmp_path


def test_without_weight(folder: Path) -> None:
    path = folder / "pairs.csv"
    path.write_text("anchor,positive,negative\nx.jpg,y.jpg,z.jpg\nsub/w.jpg,x.jpg,y.jpg\n")
    s = load_csv_triplets(path)
    assert s.name == "pairs" and [t.id for t in s] == ["pairs:2", "pairs:3"]
    t = s[1]
    assert (
        t.reference == folder / "sub" / "w.jpg"
        and t.positive == folder / "x.jpg"
        and t.negative == folder / "y.jpg"
    )
    assert t.weight == 1.0 and t.unanimous


def test_with_weight_crlf_and_absolute_paths(folder: Path) -> None:
    path = folder / "sub" / "w.csv"
    path.write_bytes(
        f"anchor,positive,negative,weight\r\n{folder / 'x.jpg'},../y.jpg,../z.jpg,0.25\r\n"
        f"w.jpg,../x.jpg,../y.jpg,\r\n".encode()
    )
    s = load_csv_triplets(path)
    assert s[0].reference == folder / "x.jpg" and s[0].weight == 0.25 and s[1].weight == 1.0
    assert s[0].a.resolve() == (folder / "y.jpg").resolve()


def test_missing_image_dropped_with_warning(folder: Path) -> None:
    path = folder / "t.csv"
    path.write_text("anchor,positive,negative\nx.jpg,y.jpg,z.jpg\nx.jpg,nope.jpg,z.jpg\n")
    with pytest.warns(DatasetWarning, match="dropped 1 of 2"):
        assert len(load_csv_triplets(path)) == 1
    assert len(load_csv_triplets(path, check_images=False)) == 2


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a,p,n\nx.jpg,y.jpg,z.jpg\n", "bad header"),
        ("anchor,positive,negative,weight\nx.jpg,y.jpg,z.jpg,heavy\n", "line 2: weight 'heavy'"),
        ("anchor,positive,negative,weight\nx.jpg,y.jpg,z.jpg,-1\n", "line 2: weight must be"),
        ("anchor,positive,negative\nx.jpg,y.jpg\n", "line 2: expected 3 columns"),
        ("", "empty"),
    ],
)
def test_errors(folder: Path, text: str, match: str) -> None:
    path = folder / "bad.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match=match):
        load_csv_triplets(path)
    with pytest.raises(DatasetError, match="not found"):
        load_csv_triplets(folder / "none.csv")
