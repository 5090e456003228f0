"""Shared fixtures for the backbone tests: the bundled face chips, the pretrained dlib port, an empty ONNX cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perface.backbones import DlibResNet, load_backbone, runtime

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


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ONNX cache folder, ONNX Runtime on, and no session built yet in this process."""
    monkeypatch.setenv(runtime.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(runtime.RUNTIME_ENV, raising=False)
    monkeypatch.setattr(runtime, "_NETS", {})
    return tmp_path
