"""Triplet losses on explicit (reference, positive, negative) embeddings, composable like pytorch-metric-learning.

A loss = a distance (pytorch-metric-learning's ``CosineSimilarity`` by default, so the loss is the
paper's ``max(0, cos(r, n) - cos(r, p) + m)``) + a reducer (mean, mean of non-zero terms, or a
vote-weighted mean). Human judgments come as fixed triplets, so no label-based mining is needed;
:class:`ViolatingTripletMiner` keeps only triplets that still violate the margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pytorch_metric_learning.distances import BaseDistance, CosineSimilarity

Reduction = Literal["mean", "nonzero", "weighted"]


def reduce_losses(losses: torch.Tensor, reduction: Reduction, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Reduce per-triplet losses: plain mean, mean over non-zero terms, or weight-normalised mean."""
    if losses.numel() == 0:
        return losses.sum()
    if reduction == "mean":
        return losses.mean()
    if reduction == "nonzero":
        nz = losses > 0
        return losses[nz].mean() if nz.any() else losses.sum() * 0
    if reduction == "weighted":
        if weights is None:
            raise ValueError("reduction='weighted' needs per-triplet weights")
        w = weights.to(losses)
        return (losses * w).sum() / w.sum().clamp_min(1e-12)
    raise ValueError(f"unknown reduction {reduction!r}")


@dataclass
class ViolatingTripletMiner:
    """Keep triplets whose margin is violated by more than ``epsilon`` (the hard and semi-hard ones)."""

    margin: float = 0.1
    epsilon: float = 0.0
    distance: BaseDistance | None = None

    def __call__(self, ref: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """Boolean mask over the batch."""
        dist = self.distance or CosineSimilarity()
        with torch.no_grad():
            ap, an = dist.pairwise_distance(ref, pos), dist.pairwise_distance(ref, neg)
            return dist.margin(ap, an) + self.margin > self.epsilon


class TripletMarginLoss(torch.nn.Module):
    """``relu(margin(d(r,p), d(r,n)) + m)`` reduced over the batch; the PerFace loss with the defaults.

    With a similarity distance (cosine, inverted) ``distance.margin(ap, an) = an - ap``, i.e. the paper's
    ``cos(r, n) - cos(r, p)``; with a true distance it is ``ap - an``.
    """

    def __init__(
        self,
        margin: float = 0.1,
        distance: BaseDistance | None = None,
        reduction: Reduction = "mean",
        miner: ViolatingTripletMiner | None = None,
    ) -> None:
        super().__init__()
        self.margin = margin
        self.distance = distance or CosineSimilarity()
        self.reduction = reduction
        self.miner = miner

    def per_triplet(self, ref: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                    margins: torch.Tensor | None = None) -> torch.Tensor:
        """Un-reduced loss for each triplet; ``margins``: one per triplet instead of ``margin``."""
        ap = self.distance.pairwise_distance(ref, pos)
        an = self.distance.pairwise_distance(ref, neg)
        return torch.relu(self.distance.margin(ap, an) + (self.margin if margins is None else margins))

    def forward(
        self, ref: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, weights: torch.Tensor | None = None,
        margins: torch.Tensor | None = None,
    ) -> torch.Tensor:
        losses = self.per_triplet(ref, pos, neg, margins)
        if self.miner is not None:
            keep = self.miner(ref, pos, neg)
            losses = losses[keep]
            weights = None if weights is None else weights[keep]
        return reduce_losses(losses, self.reduction, weights)
