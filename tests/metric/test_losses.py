"""perface.metric.losses: the paper's loss by hand, agreement with pytorch-metric-learning, reducers, miner."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import reducers

from perface.metric.losses import TripletMarginLoss, ViolatingTripletMiner, reduce_losses


def _batch(seed: int = 0, n: int = 7, d: int = 5):
    g = torch.Generator().manual_seed(seed)
    return [F.normalize(torch.randn(n, d, generator=g), dim=1) for _ in range(3)]


def test_matches_paper_formula():
    r, p, n = _batch()
    expected = torch.relu((r * n).sum(1) - (r * p).sum(1) + 0.1).mean()
    assert torch.allclose(TripletMarginLoss(margin=0.1)(r, p, n), expected, atol=1e-6)


def test_matches_pytorch_metric_learning():
    r, p, n = _batch(1)
    emb = torch.cat([r, p, n])
    k = len(r)
    idx = (torch.arange(k), torch.arange(k, 2 * k), torch.arange(2 * k, 3 * k))
    from pytorch_metric_learning.distances import CosineSimilarity

    pml = pml_losses.TripletMarginLoss(margin=0.1, distance=CosineSimilarity(), reducer=reducers.MeanReducer())
    assert torch.allclose(pml(emb, indices_tuple=idx), TripletMarginLoss(margin=0.1)(r, p, n), atol=1e-6)


def test_reductions():
    losses = torch.tensor([0.0, 1.0, 3.0])
    assert reduce_losses(losses, "mean") == pytest.approx(4 / 3)
    assert reduce_losses(losses, "nonzero") == pytest.approx(2.0)
    assert reduce_losses(losses, "weighted", torch.tensor([1.0, 1.0, 2.0])) == pytest.approx(7 / 4)
    assert reduce_losses(torch.zeros(3), "nonzero") == 0
    with pytest.raises(ValueError):
        reduce_losses(losses, "weighted")


def test_easy_triplets_give_zero_and_miner_drops_them():
    r = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[1.0, 0.0]])
    n = torch.tensor([[-1.0, 0.0]])
    assert TripletMarginLoss()(r, p, n) == 0
    assert not ViolatingTripletMiner(margin=0.1)(r, p, n).any()
    assert ViolatingTripletMiner(margin=0.1)(r, n, p).all()


def test_gradient_pulls_positive_closer():
    r, p, n = (t.clone().requires_grad_(True) for t in _batch(2, n=1))
    loss = TripletMarginLoss(margin=2.0)(r, p, n)
    loss.backward()
    with torch.no_grad():
        p2 = F.normalize(p - 0.1 * p.grad, dim=1)
    assert (r * p2).sum() > (r * p).sum()


def test_per_triplet_margins_replace_the_margin_triplet_by_triplet():
    ref, pos, neg = _batch(n=6)
    loss = TripletMarginLoss(margin=0.1, reduction="mean")
    same = torch.full((6,), 0.1)
    assert torch.allclose(loss.per_triplet(ref, pos, neg, same), loss.per_triplet(ref, pos, neg))
    wide = torch.tensor([0.1, 0.1, 0.1, 2.5, 2.5, 2.5])
    per = loss.per_triplet(ref, pos, neg, wide)
    assert torch.equal(per[:3], loss.per_triplet(ref, pos, neg)[:3]) and bool((per[3:] > 0.5).all())
    assert float(loss(ref, pos, neg, margins=wide)) == float(per.mean())
