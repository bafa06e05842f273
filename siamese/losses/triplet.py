"""Triplet losses: random triplets, and triplets mined inside a P x K batch."""

from __future__ import annotations

import mxnet as mx

from ..errors import UserError
from .distances import get_distance
from .mining import MINERS
from .pair import DistanceLoss


class TripletLoss(DistanceLoss):
    """Schroff et al. (2015): max(0, d(a, p) - d(a, n) + margin) per triplet.

    The network gets anchors, positives and negatives (three image arrays, no targets); the
    score at evaluation is the distance (lower = more similar).
    """

    n_inputs = 3

    def hybrid_forward(self, F, ea, ep, en):
        """ea, ep, en: (B, E) -> loss per triplet (B,)."""
        return F.relu(self._dist(F, ea, ep) - self._dist(F, ea, en) + self.margin)

    def example_targets(self, n: int, ctx) -> list:
        return []


class BatchTripletLoss(TripletLoss):
    """Triplet loss mined inside a batch of P classes x K images (one pass of the branch).

    For every anchor a and every positive p (same class, another image), the negative n is:
    - none: every negative of the batch (all triplets, averaged);
    - hard: the closest negative, min d(a, n);
    - semi_hard: the closest negative farther than the positive, min d(a, n) with
      d(a, n) > d(a, p); when there is none, the farthest negative (as TensorFlow's
      triplet_semihard_loss).
    The loss of an anchor is the mean over its positives (and negatives, for none) of
    max(0, d(a, p) - d(a, n) + margin); anchors without a positive in the batch give 0.

    Inputs: embeddings (N, E), class labels (N,), image ids (N,): a class with fewer than K
    images repeats some, and an image is never its own positive.
    """

    n_inputs = 1
    MINING = tuple(MINERS)

    def __init__(self, margin: float = 1.0, distance: str = "euclidean", mining: str = "hard",
                 **kwargs):
        super().__init__(margin, distance, **kwargs)
        if mining not in self.MINING:
            raise UserError(f"loss.mining: unknown {mining!r} (valid: {', '.join(self.MINING)})")
        self.mining = mining
        self._matrix = get_distance(distance).matrix

    def hybrid_forward(self, F, e, labels, ids):
        """e: (N, E); labels, ids: (N,) -> loss per anchor (N,). Works on (N, N) arrays only:
        each anchor's negatives are sorted once, and every (anchor, positive) finds its place
        among them by binary search (siamese.losses.mining)."""
        d = self._matrix(F, e)  # (N, N)
        same = F.broadcast_equal(F.expand_dims(labels, 1), F.expand_dims(labels, 0))
        itself = F.broadcast_equal(F.expand_dims(ids, 1), F.expand_dims(ids, 0))
        pos = same * (1 - itself)  # (N, N): valid (a, p)
        neg = 1 - same  # (N, N): valid (a, n)
        return MINERS[self.mining](F, d, pos, neg, self.margin)

    def example_targets(self, n: int, ctx) -> list:
        return [mx.nd.arange(n, ctx=ctx) % 2, mx.nd.arange(n, ctx=ctx)]
