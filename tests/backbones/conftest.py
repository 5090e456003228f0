"""Shared fixtures for the backbone tests: the bundled face chips and the pretrained dlib port."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perface.backbones import DlibResNet, load_backbone

CHIPS_DIR = Path(__file__).resolve().parents[1] / "data" / "chips"


@pytest.fixture(scope="session")
def chip_files() -> list[Path]:
    files = sorted(CHIPS_DIR.glob("*.jpg"))
    assert len(files) >= 21, f"expected the bundled chips in {CHIPS_DIR}"
    return files


@pytest.fixture(scope="session")
def chips(chip_files: list[Path]) -> np.ndarray:
    """N x 150 x 150 x 3 uint8 RGB aligned face chips (20 One Million Impressions faces + astronaut)."""
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in chip_files])


@pytest.fixture(scope="session")
def dlib_model() -> DlibResNet:
    """The PyTorch port with dlib's shipped weights (eval mode, CPU). Tests must not modify it."""
    model = load_backbone("dlib-resnet")
    assert isinstance(model, DlibResNet)
    return model
