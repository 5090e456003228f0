"""ONNX Runtime and PyTorch anonymize alike: the same donors, methods and report figures within float rounding.

The runtime is only a faster way to compute the same embeddings, so privacy figures measured with PyTorch hold.
The 50-image CelebA version of this check is ``benchmarks/runtime_equality.py``."""

from __future__ import annotations

import pytest

from perface.anonymize.anonymizer import AnonymizeConfig, Anonymizer
from perface.backbones.runtime import RUNTIME_ENV
from perface.face.io import read_image


def _records(image, runtime: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(RUNTIME_ENV, runtime)
    an = Anonymizer(AnonymizeConfig())
    assert type(an.model).__name__ == ("OnnxPerFaceModel" if runtime == "onnx" else "PerFaceModel")
    return an.anonymize_array(image, seed=0)[1]


def test_demo_donors_equal_in_both_runtimes(group_image_path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = read_image(group_image_path)
    fast = _records(image, "onnx", monkeypatch)
    ref = _records(image, "torch", monkeypatch)
    assert [r.donor_id for r in fast] == [r.donor_id for r in ref] and all(r.donor_id for r in ref)
    for f, r in zip(fast, ref, strict=True):
        assert (f.method, f.group, f.tries, f.gender_kept, f.age_group_kept) == (
            r.method, r.group, r.tries, r.gender_kept, r.age_group_kept)
        for name in ("identity_similarity_after", "identity_similarity_donor", "perceptual_similarity_donor",
                     "perceptual_similarity_after"):
            assert getattr(f, name) == pytest.approx(getattr(r, name), abs=2e-4), name
