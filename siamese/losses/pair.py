"""Losses on pairs of embeddings (and the per-pair logit of a two-channel network).

Label convention everywhere: 1 = same class, 0 = different. Each loss reports its score spec
(what siamese.scoring.scores computes at evaluation) and whether a higher score means more
similar, so metrics are never inverted.

Each loss also says what a training batch holds: `n_inputs` image arrays for the network
(2 for pairs, 3 for triplets, 1 for a P x K batch), then the targets `example_targets` builds.
Every loss returns one value per example (pair, triplet or anchor image), so `trainer.step`
divides by the number of examples.
"""

from __future__ import annotations

import mxnet as mx
from mxnet.gluon import HybridBlock, nn
from mxnet.gluon import loss as gloss

from .distances import get_distance


class DistanceLoss(HybridBlock):
    """A loss on a distance between embeddings (`model.distance`) with a margin; its score at
    evaluation is that distance (lower = more similar)."""

    higher_is_similar = False

    def __init__(self, margin: float = 1.0, distance: str = "euclidean", **kwargs):
        super().__init__(**kwargs)
        self.margin = margin
        self.distance = distance
        self._dist = get_distance(distance).pairs

    def score_spec(self) -> dict:
        return {"name": self.distance, "higher_is_similar": False}


class PairTargets:
    """Pair losses: two image arrays, then the label (B,)."""

    n_inputs = 2

    def example_targets(self, n: int, ctx) -> list:
        return [mx.nd.zeros((n,), ctx=ctx)]


class ContrastiveLoss(PairTargets, DistanceLoss):
    """Hadsell et al. (2006): 0.5 * [y d^2 + (1 - y) max(0, margin - d)^2] per pair.

    Label 1 = same. The score is the distance d: higher = less similar.

    Args:
        margin: different pairs closer than this are pushed apart (in distance units).
        distance: a name in DISTANCES.
    """

    def hybrid_forward(self, F, e1, e2, label):
        """e1, e2: (B, E); label: (B,) -> loss per pair (B,)."""
        d = self._dist(F, e1, e2)
        far = F.relu(self.margin - d)
        return 0.5 * (label * F.square(d) + (1 - label) * F.square(far))


class LogisticLoss(PairTargets, HybridBlock):
    """Koch et al. (2015): a learned head sigmoid(w . |e1 - e2| + b) and binary cross-entropy.

    Label 1 = same. The score is the head's probability of "same": higher = more similar.
    """

    higher_is_similar = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.head = nn.Dense(1, flatten=False)
        self._bce = gloss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=False)

    def hybrid_forward(self, F, e1, e2, label):
        """e1, e2: (B, E); label: (B,) -> loss per pair (B,)."""
        logit = F.reshape(self.head(F.abs(e1 - e2)), (-1,))  # (B,)
        return self._bce(logit, label)

    def score_spec(self) -> dict:
        return {
            "name": "logistic", "higher_is_similar": True,
            "weights": self.head.weight.data().asnumpy().reshape(-1).tolist(),
            "bias": float(self.head.bias.data().asnumpy().reshape(-1)[0]),
        }


class PairScoreLoss(PairTargets, HybridBlock):
    """Binary cross-entropy on a network's own per-pair logit (two-channel architecture).

    The score at evaluation is sigmoid(logit), the probability of "same": higher = more
    similar. No parameters: the head belongs to the network (it is exported with it).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._bce = gloss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=False)

    def hybrid_forward(self, F, logit, label):
        """logit, label: (B,) -> loss per pair (B,)."""
        return self._bce(logit, label)

    def score_spec(self) -> dict:
        return {"name": "pair_scorer", "higher_is_similar": True}


class NoSimilarityLoss(HybridBlock):
    """loss.name: none: no similarity term (reconstruction-only training with a decoder). The
    embeddings are still scored by `model.distance` at evaluation."""

    n_inputs = 0

    def __init__(self, distance: str = "euclidean", **kwargs):
        super().__init__(**kwargs)
        self.distance = distance

    def hybrid_forward(self, F, x):
        return x

    def example_targets(self, n: int, ctx) -> list:
        return []

    def score_spec(self) -> dict:
        return {"name": self.distance, "higher_is_similar": False}
