"""perface.face.lbph: one normalised histogram per cell, textures told apart, chi-square nearest = brute force."""

from __future__ import annotations

import cv2
import numpy as np

from perface.face.lbph import chi_square_distances, chi_square_nearest, lbph_descriptor


def test_lbph_descriptor_is_one_normalised_histogram_per_cell() -> None:
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    d = lbph_descriptor(crop, grid=4)
    assert d.shape == (4 * 4 * 59,)
    np.testing.assert_allclose(d.reshape(16, 59).sum(1), 1.0, atol=1e-5)


def test_lbph_descriptor_separates_textures() -> None:
    """Two noisy copies of one texture are nearer (chi-square) than a different texture."""
    rng = np.random.default_rng(1)
    base = cv2.resize(rng.integers(0, 256, (28, 28, 3), dtype=np.uint8), (112, 112))
    stripes = np.tile((np.arange(112) // 4 % 2 * 255).astype(np.uint8)[None, :, None], (112, 1, 3))

    def noisy(x: np.ndarray) -> np.ndarray:
        return np.clip(x.astype(int) + rng.integers(-3, 4, x.shape), 0, 255).astype(np.uint8)

    gallery = np.stack([lbph_descriptor(noisy(stripes)), lbph_descriptor(noisy(base))])
    assert chi_square_nearest(lbph_descriptor(noisy(base))[None], gallery).tolist() == [1]


def test_chi_square_nearest_matches_brute_force() -> None:
    rng = np.random.default_rng(2)
    probes, gallery = rng.random((7, 20)), rng.random((11, 20))
    brute = [int(np.argmin([((p - g) ** 2 / (p + g + 1e-9)).sum() for g in gallery])) for p in probes]
    assert chi_square_nearest(probes, gallery, chunk=3).tolist() == brute


def test_chi_square_distances_row_wise() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random((4, 9)), rng.random((4, 9))
    ref = [((x - y) ** 2 / (x + y + 1e-9)).sum() for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(chi_square_distances(a, b), ref)
    assert chi_square_distances(a[0], a[0])[0] == 0.0
