"""perface.backbones.tfjs_backbone: the stages of a TF.js network chain to the graph's own output; freezing works."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perface.backbones import load_backbone
from perface.backbones.tfjs_backbone import TfjsBackbone, cut_points


@pytest.fixture(scope="module")
def mfn() -> TfjsBackbone:
    bb = load_backbone("mobilefacenet")
    assert isinstance(bb, TfjsBackbone)
    return bb


def test_stages_chain_to_the_graphs_output(mfn, chips):
    x = mfn.preprocess(np.stack([np.asarray(c) for c in chips[:3, 19:131, 19:131]]))  # 112 px centre crops
    assert x.shape == (3, 3, 112, 112)
    with torch.no_grad():
        staged = mfn(x)
        direct = mfn.graph(x.permute(0, 2, 3, 1), outputs=mfn.stage_nodes["head"])
    assert staged.shape == (3, mfn.embedding_dim) == (3, 192)
    torch.testing.assert_close(staged, direct.reshape(3, -1), rtol=0, atol=1e-6)
    names = [n for n, _ in mfn.stages()]
    assert names[-1] == "head" and len(names) >= 4


def test_cut_points_are_single_tensor_boundaries(mfn):
    """Running the graph from each cut point's value alone reproduces the output (nothing else is carried over)."""
    output = mfn.stage_nodes["head"]
    cuts = cut_points(mfn.graph, output)
    assert len(cuts) > 10
    x = torch.randn(1, 112, 112, 3)
    with torch.no_grad():
        full = mfn.graph(x, outputs=[output, cuts[len(cuts) // 2]])
        from perface.backbones.tfjs_backbone import _Stage

        rest = _Stage(mfn.graph, cuts[len(cuts) // 2], output)
        mid = full[cuts[len(cuts) // 2]]
        y = rest(mid.permute(0, 3, 1, 2) if mid.ndim == 4 else mid)
    torch.testing.assert_close(y, full[output].reshape(1, -1), rtol=0, atol=1e-6)


def test_freeze_until_trains_only_the_later_stages(mfn):
    try:
        mfn.freeze_until("stage3")
        assert mfn.trainable_stages() == ["stage4", "stage5"]  # MobileFaceNet's head only L2-normalises
        mfn.freeze_until("head")
        assert mfn.trainable_stages() == []
        keys = mfn.stage_state_keys("stage5")
        assert keys and all(k in mfn.state_dict() for k in keys)
    finally:
        mfn.freeze_until("head")


def test_unknown_tfjs_backbone_and_unsupported_options():
    with pytest.raises(ValueError, match="unknown backbone"):
        load_backbone("arcface-r100")
    with pytest.raises(ValueError, match="ships its weights"):
        load_backbone("faceres", pretrained=False)


def test_faceres_feats_stage_follows_the_identity_output(chips):
    """FaceRes's ``feats`` stage (under its gender and age heads) equals the graph's node; ``forward`` stays the
    identity output, so a stage past ``head`` changes nothing for models that do not pool it."""
    bb = load_backbone("faceres")
    names = [n for n, _ in bb.stages()]
    assert names[-2:] == ["head", "feats"]
    crops = np.stack([np.asarray(c) for c in chips[:2]])
    x = bb.preprocess(np.stack([np.pad(c, ((37, 37), (37, 37), (0, 0)), mode="edge") for c in crops]))  # 224 px
    with torch.no_grad():
        staged = x
        for _, mod in bb.stages():
            staged = mod(staged)
        direct = bb.graph(x.permute(0, 2, 3, 1), outputs=["feats/Relu", bb.stage_nodes["head"]])
        ident = bb(x)
    assert staged.shape == (2, 256) and bool((staged >= 0).all())  # a ReLU layer
    torch.testing.assert_close(staged, direct["feats/Relu"], rtol=0, atol=1e-5)
    torch.testing.assert_close(ident, direct[bb.stage_nodes["head"]].reshape(2, -1), rtol=0, atol=1e-5)
    assert ident.shape == (2, bb.embedding_dim) == (2, 1024)
