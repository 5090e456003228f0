"""Shared fixtures: a real face image that needs no download, and the optional ../shared data."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """../shared/data beside the checkout (or $PERFACE_SHARED_DATA), None when absent."""
    env = os.environ.get("PERFACE_SHARED_DATA")
    cand = Path(env) if env else REPO.parent / "shared" / "data"
    return cand if cand.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; tests using it skip when it is absent."""
    d = shared_data_dir()
    if d is None:
        pytest.skip("../shared/data is not present (set PERFACE_SHARED_DATA to run this test)")
    return d


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """skimage's astronaut photo (public domain): one real frontal face."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def group_image_path() -> Path:
    """The bundled example photo with three faces."""
    return Path(str(resources.files("perface").joinpath("examples", "group.jpg")))
