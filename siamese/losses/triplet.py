"""Triplet losses: random triplets, and triplets mined inside a P x K batch."""

from __future__ import annotations

import mxnet as mx

from ..errors import UserError
from .distances import get_distance
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
    MINING = ("none", "semi_hard", "hard")

    def __init__(self, margin: float = 1.0, distance: str = "euclidean", mining: str = "hard",
                 **kwargs):
        super().__init__(margin, distance, **kwargs)
        if mining not in self.MINING:
            raise UserError(f"loss.mining: unknown {mining!r} (valid: {', '.join(self.MINING)})")
        self.mining = mining
        self._matrix = get_distance(distance).matrix

    def hybrid_forward(self, F, e, labels, ids):
        """e: (N, E); labels, ids: (N,) -> loss per anchor (N,)."""
        d = self._matrix(F, e)  # (N, N)
        same = F.broadcast_equal(F.expand_dims(labels, 1), F.expand_dims(labels, 0))
        itself = F.broadcast_equal(F.expand_dims(ids, 1), F.expand_dims(ids, 0))
        pos = same * (1 - itself)  # (N, N): valid (a, p)
        neg = 1 - same  # (N, N): valid (a, n)
        big = 1e6
        if self.mining == "none":
            # (N, N, N): [a, p, n] = d(a, p) - d(a, n) + margin, on valid triplets only
            gap = F.broadcast_sub(F.expand_dims(d, 2), F.expand_dims(d, 1)) + self.margin
            valid = F.broadcast_mul(F.expand_dims(pos, 2), F.expand_dims(neg, 1))
            total = F.sum(F.sum(F.relu(gap) * valid, axis=2), axis=1)
            return total / F.maximum(F.sum(F.sum(valid, axis=2), axis=1), 1)
        if self.mining == "hard":
            pick = F.argmin(d + big * (1 - neg), axis=1)  # (N,) closest negative per anchor
            d_an = F.broadcast_like(F.expand_dims(F.pick(d, pick, axis=1), 1), d)  # (N, N)
        else:
            # [a, p, n] = d(a, n), repeated over p
            d_n = F.broadcast_add(F.expand_dims(d, 1), F.expand_dims(F.zeros_like(d), 2))
            d_p = F.expand_dims(d, 2)  # [a, p, 1] = d(a, p)
            farther = F.broadcast_mul(F.broadcast_greater(d_n, d_p), F.expand_dims(neg, 1))
            semi = F.argmin(d_n + big * (1 - farther), axis=2)  # (N, N)
            fallback = F.argmax(d - big * (1 - neg), axis=1)  # (N,) farthest negative
            exists = F.max(farther, axis=2)  # (N, N)
            choice = F.where(exists, semi, F.broadcast_like(F.expand_dims(fallback, 1), d))
            d_an = F.pick(d_n, choice, axis=2)  # (N, N)
        per_pair = F.relu(d - d_an + self.margin) * pos
        return F.sum(per_pair, axis=1) / F.maximum(F.sum(pos, axis=1), 1)

    def example_targets(self, n: int, ctx) -> list:
        return [mx.nd.arange(n, ctx=ctx) % 2, mx.nd.arange(n, ctx=ctx)]
