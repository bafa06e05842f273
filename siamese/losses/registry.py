"""The loss registry: entry name -> a builder from the `loss` config section and the distance.

Entries are what a run trains with, chosen with the batch source by siamese.train.pairing:
`loss.name: triplet` is `triplet` on random triplets and `batch_triplet` on P x K batches;
`logistic` on a two-channel network is `pair_score` (the network has its own head).
"""

from __future__ import annotations

from typing import Callable, Dict

from mxnet.gluon import HybridBlock

from ..errors import UserError
from .pair import ContrastiveLoss, LogisticLoss, NoSimilarityLoss, PairScoreLoss
from .triplet import BatchTripletLoss, TripletLoss

LOSSES: Dict[str, Callable[..., HybridBlock]] = {
    "contrastive": lambda cfg, distance: ContrastiveLoss(cfg.margin, distance),
    "logistic": lambda cfg, distance: LogisticLoss(),
    "pair_score": lambda cfg, distance: PairScoreLoss(),
    "triplet": lambda cfg, distance: TripletLoss(cfg.margin, distance),
    "batch_triplet": lambda cfg, distance: BatchTripletLoss(cfg.margin, distance, cfg.mining),
    "none": lambda cfg, distance: NoSimilarityLoss(distance),
}


def build_loss(cfg, distance: str, entry: str = "") -> HybridBlock:
    """The loss block.

    Args:
        cfg: the `loss` config section (margin, mining).
        distance: `model.distance`, the distance the loss and its score use.
        entry: the LOSSES entry (default `cfg.name`), as siamese.train.pairing chooses it.
    """
    entry = entry or cfg.name
    if entry not in LOSSES:
        raise UserError(f"loss.name: unknown loss {entry!r} (valid: {', '.join(LOSSES)})")
    return LOSSES[entry](cfg, distance)
