"""The loss registry: entry name -> a builder from the `loss` config section and the distance.

Entries are what a run trains with, chosen with the batch source by siamese.train.pairing:
`loss.name: triplet` is `triplet` on random triplets and `batch_triplet` on P x K batches;
`logistic` on a two-channel network is `pair_score` (the network has its own head).
"""

from __future__ import annotations

from typing import Callable, Dict

from mxnet.gluon import HybridBlock

from ..errors import UserError
from .margin import CosFaceLoss
from .members import PerMember
from .neighbours import BatchNCALoss
from .pair import ContrastiveLoss, LogisticLoss, NoSimilarityLoss, PairScoreLoss
from .triplet import BatchTripletLoss, TripletLoss

# entry -> builder(loss config section, distance name, number of classes, embedding size)
LOSSES: Dict[str, Callable[..., HybridBlock]] = {
    "contrastive": lambda cfg, distance, classes, size: ContrastiveLoss(cfg.margin, distance),
    "logistic": lambda cfg, distance, classes, size: LogisticLoss(),
    "pair_score": lambda cfg, distance, classes, size: PairScoreLoss(),
    "triplet": lambda cfg, distance, classes, size: TripletLoss(cfg.margin, distance),
    "batch_triplet": lambda cfg, distance, classes, size: BatchTripletLoss(cfg.margin, distance,
                                                                      cfg.mining),
    "cosface": lambda cfg, distance, classes, size: CosFaceLoss(classes, size, cfg.scale,
                                                                cfg.margin, distance),
    "nca": lambda cfg, distance, classes, size: BatchNCALoss(cfg.scale, distance),
    "none": lambda cfg, distance, classes, size: NoSimilarityLoss(distance),
}


def build_loss(cfg, distance: str, entry: str = "", classes: int = 0,
               embedding_size: int = 0, members: int = 1) -> HybridBlock:
    """The loss block.

    Args:
        cfg: the `loss` config section (margin, mining, scale).
        distance: `model.distance`, the distance the loss and its score use.
        entry: the LOSSES entry (default `cfg.name`), as siamese.train.pairing chooses it.
        classes, embedding_size: how many classes labels index, and E (margin softmax).
        members: `model.members`; above 1, one loss per member of the branch (PerMember).
    """
    entry = entry or cfg.name
    if entry not in LOSSES:
        raise UserError(f"loss.name: unknown loss {entry!r} (valid: {', '.join(LOSSES)})")
    if members > 1:
        return PerMember(lambda: LOSSES[entry](cfg, distance, classes, embedding_size), members)
    return LOSSES[entry](cfg, distance, classes, embedding_size)
