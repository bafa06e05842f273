"""Distances and losses (registries), as Gluon blocks for training.

Label convention everywhere: 1 = same class, 0 = different. Each loss reports its score spec
(what `siamese.scoring` computes at evaluation) and whether a higher score means more similar,
so metrics are never inverted.

Each loss also says what a training batch holds: `n_inputs` image arrays for the network
(2 for pairs, 3 for triplets, 1 for a P x K batch), then the targets `example_targets` builds.
Every loss returns one value per example (pair, triplet or anchor image), so `trainer.step`
divides by the number of examples.
"""

from __future__ import annotations

from typing import Callable, Dict

import mxnet as mx
from mxnet.gluon import HybridBlock, nn
from mxnet.gluon import loss as gloss

from .errors import UserError

# Keeps sqrt differentiable at distance 0: d(sqrt(s + eps))/ds is finite, and ds/de = 0 there,
# so identical embeddings give gradient 0, not NaN.
EPS = 1e-12


def euclidean(F, e1, e2):
    """L2 distance (B,); lower = more similar."""
    return F.sqrt(F.sum(F.square(e1 - e2), axis=1) + EPS)


def cosine(F, e1, e2):
    """1 - cosine similarity (B,), in [0, 2]; lower = more similar."""
    dot = F.sum(e1 * e2, axis=1)
    norms = F.sqrt(F.sum(F.square(e1), axis=1) * F.sum(F.square(e2), axis=1) + EPS)
    return 1.0 - dot / norms


DISTANCES: Dict[str, Callable] = {"euclidean": euclidean, "cosine": cosine}


def euclidean_matrix(F, e):
    """(N, N) L2 distances between all rows of e (N, E), exact (no |a|^2 + |b|^2 - 2ab)."""
    diff = F.broadcast_sub(F.expand_dims(e, 1), F.expand_dims(e, 0))  # (N, N, E)
    return F.sqrt(F.sum(F.square(diff), axis=2) + EPS)


def cosine_matrix(F, e):
    """(N, N) cosine distances 1 - cos between all rows of e (N, E)."""
    unit = F.broadcast_div(e, F.sqrt(F.sum(F.square(e), axis=1, keepdims=True) + EPS))
    return 1.0 - F.dot(unit, unit, transpose_b=True)


DISTANCE_MATRICES: Dict[str, Callable] = {"euclidean": euclidean_matrix,
                                          "cosine": cosine_matrix}


class DistanceLoss(HybridBlock):
    """A loss on a distance between embeddings (`model.distance`) with a margin; its score at
    evaluation is that distance (lower = more similar)."""

    higher_is_similar = False

    def __init__(self, margin: float = 1.0, distance: str = "euclidean", **kwargs):
        super().__init__(**kwargs)
        if distance not in DISTANCES:
            raise UserError(f"model.distance: unknown {distance!r} "
                            f"(valid: {', '.join(DISTANCES)})")
        self.margin = margin
        self.distance = distance
        self._dist = DISTANCES[distance]

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
        self._matrix = DISTANCE_MATRICES[distance]

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


def _triplet(cfg):
    if cfg.data.sampler == "pk":
        return BatchTripletLoss(cfg.loss.margin, cfg.model.distance, cfg.loss.mining)
    return TripletLoss(cfg.loss.margin, cfg.model.distance)


LOSSES: Dict[str, Callable] = {
    "contrastive": lambda cfg: ContrastiveLoss(cfg.loss.margin, cfg.model.distance),
    "logistic": lambda cfg: (PairScoreLoss() if cfg.model.architecture == "two_channel"
                             else LogisticLoss()),
    "triplet": _triplet,
    "none": lambda cfg: NoSimilarityLoss(cfg.model.distance),
}


def build_loss(cfg) -> HybridBlock:
    """The configured loss block; `cfg` is the whole Config (loss, model.distance, sampler)."""
    if cfg.loss.name not in LOSSES:
        raise UserError(f"loss.name: unknown loss {cfg.loss.name!r} "
                        f"(valid: {', '.join(LOSSES)})")
    return LOSSES[cfg.loss.name](cfg)
