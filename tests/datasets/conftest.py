"""Fixtures for the dataset tests: tiny image writers and the optional shared data folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image


def shared_data_dir() -> Path | None:
    """``$PERFACE_SHARED_DATA`` or ``<repo>/../shared/data``, if it exists."""
    env = os.environ.get("PERFACE_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    return path.resolve() if path.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    """The shared data folder; skips the test when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("shared data not found (set PERFACE_SHARED_DATA or provide ../shared/data)")
    return path


@pytest.fixture
def write_image() -> Callable[[Path], Path]:
    """Write a tiny valid image (format from the suffix) and return its path."""

    def write(path: Path, color: tuple[int, int, int] = (120, 80, 40)) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), color).save(path)
        return path

    return write
