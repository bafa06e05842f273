"""Neighbourhood components analysis inside a P x K batch: the soft form of the decision a
one-shot episode scores (the nearest support image gives the class)."""

from __future__ import annotations

import mxnet as mx

from .distances import get_distance
from .pair import DistanceLoss


class BatchNCALoss(DistanceLoss):
    """Goldberger et al. (2005), on a batch of P classes x K images: every anchor a picks
    another image x of the batch with probability softmax over x != a of -scale * d(a, x);
    the loss of a is -log P(the pick shares a's class). Anchors without another image of
    their class in the batch give 0.

    Inputs: embeddings (N, E), class labels (N,), image ids (N,): a class with fewer than K
    images repeats some, and an image is never its own neighbour.

    Args:
        scale: s of the logits -s * d (`loss.scale`); with unit embeddings and the euclidean
            distance, d lies in [0, 2].
        distance: `model.distance`, which the logits and the score use.
    """

    n_inputs = 1

    def __init__(self, scale: float = 16.0, distance: str = "euclidean", **kwargs):
        super().__init__(0.0, distance, **kwargs)
        self.scale = scale
        self._matrix = get_distance(distance).matrix

    def hybrid_forward(self, F, e, labels, ids):
        """e: (N, E); labels, ids: (N,) -> loss per anchor (N,)."""
        logits = -self.scale * self._matrix(F, e)  # (N, N)
        same = F.broadcast_equal(F.expand_dims(labels, 1), F.expand_dims(labels, 0))
        other = 1 - F.broadcast_equal(F.expand_dims(ids, 1), F.expand_dims(ids, 0))
        pos = same * other  # (N, N): a's neighbours of its class
        top = F.BlockGrad(F.max(logits, axis=1, keepdims=True))  # (N, 1), for exp's range
        w = F.exp(F.broadcast_sub(logits, top))  # (N, N) in (0, 1]
        every = F.sum(w * other, axis=1)  # (N,)
        hits = F.sum(w * pos, axis=1)
        has = F.sum(pos, axis=1) > 0
        return has * (F.log(F.maximum(every, 1e-30)) - F.log(F.maximum(hits, 1e-30)))

    def example_targets(self, n: int, ctx) -> list:
        return [mx.nd.arange(n, ctx=ctx) % 2, mx.nd.arange(n, ctx=ctx)]
