"""Code kept only to be compared with, never on the training path:

- the training step before issue 23's single check (`PlainCheckStep`: one sum per gradient
  array instead of the sums of squares in one operator), which `siamese bench` times beside
  today's step;
- the (N, N, N) batch-triplet mining this package used until issue 23
  (`CubeBatchTripletLoss`): the reference the (N, N) miners (siamese.losses.mining) are tested
  against, and `siamese bench --only triplet` measures both side by side. Same interface as
  BatchTripletLoss.
"""

from __future__ import annotations

from ...losses.distances import EPS, cosine_matrix
from ...losses.triplet import BatchTripletLoss
from ...train.step import TrainStep


class PlainCheckStep(TrainStep):
    """The step as it ran before issue 23: the finite check sums each gradient array."""

    squares = False


def euclidean_cube(F, e):
    """(N, N) L2 distances between all rows of e (N, E) from the (N, N, E) differences."""
    diff = F.broadcast_sub(F.expand_dims(e, 1), F.expand_dims(e, 0))  # (N, N, E)
    return F.sqrt(F.sum(F.square(diff), axis=2) + EPS)


MATRICES = {"euclidean": euclidean_cube, "cosine": cosine_matrix}


class CubeBatchTripletLoss(BatchTripletLoss):
    """BatchTripletLoss mined on (N, N, N) tensors [anchor, positive, negative], with the
    euclidean matrix from (N, N, E) differences."""

    def __init__(self, margin: float = 1.0, distance: str = "euclidean", mining: str = "hard",
                 **kwargs):
        super().__init__(margin, distance, mining, **kwargs)
        self._matrix = MATRICES[distance]

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
