"""Tests for the exported dlib ResNet graph: descriptor and pooled levels equal to the PyTorch port's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perface.backbones import LEVELS, DlibResNet, preprocess_chips
from perface.backbones.onnx_graphs import DLIB_LEVELS, DLIB_MEAN_RGB, dlib_input, run_dlib_features


def test_levels_and_means_match_the_port() -> None:
    assert DLIB_LEVELS == LEVELS
    np.testing.assert_array_equal(DlibResNet.from_dat().mean_rgb.numpy(), DLIB_MEAN_RGB)


def test_dlib_graph_equals_torch(chips: np.ndarray, dlib_model: DlibResNet) -> None:
    sub = chips[:6]
    np.testing.assert_array_equal(dlib_input(sub), preprocess_chips(sub).numpy())
    out = run_dlib_features(sub)
    if out is None:
        pytest.skip("ONNX Runtime is switched off (PERFACE_RUNTIME=torch)")
    with torch.inference_mode():
        x = dlib_model.preprocess(sub)
        ref = dlib_model(x).numpy()
        y = dlib_model.preprocess(sub)
        pooled = {}
        for n in LEVELS:
            y = dlib_model.get_submodule(n)(y)
            pooled[n] = y.mean(dim=(2, 3)).numpy()
    cos = (out["descriptor"] * ref).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(out["descriptor"], axis=1)
    assert cos.min() >= 0.9999
    np.testing.assert_allclose(out["descriptor"], ref, atol=1e-4)
    for n in LEVELS:
        np.testing.assert_allclose(out[f"pooled_{n}"], pooled[n], atol=1e-4)
    again = run_dlib_features(sub[::-1].copy())  # from the memo, in the asked order
    np.testing.assert_array_equal(again["descriptor"], out["descriptor"][::-1])
