"""Distances and losses (registries), as Gluon blocks for training.

Label convention everywhere: 1 = same class, 0 = different. Each loss reports its score spec
(what `siamese.scoring` computes at evaluation) and whether a higher score means more similar,
so metrics are never inverted.
"""

from __future__ import annotations

from typing import Callable, Dict

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


class ContrastiveLoss(HybridBlock):
    """Hadsell et al. (2006): 0.5 * [y d^2 + (1 - y) max(0, margin - d)^2] per pair.

    Label 1 = same. The score is the distance d: higher = less similar.

    Args:
        margin: different pairs closer than this are pushed apart (in distance units).
        distance: a name in DISTANCES.
    """

    higher_is_similar = False

    def __init__(self, margin: float = 1.0, distance: str = "euclidean", **kwargs):
        super().__init__(**kwargs)
        if distance not in DISTANCES:
            raise UserError(f"loss.distance: unknown {distance!r} (valid: {', '.join(DISTANCES)})")
        self.margin = margin
        self.distance = distance
        self._dist = DISTANCES[distance]

    def hybrid_forward(self, F, e1, e2, label):
        """e1, e2: (B, E); label: (B,) -> loss per pair (B,)."""
        d = self._dist(F, e1, e2)
        far = F.relu(self.margin - d)
        return 0.5 * (label * F.square(d) + (1 - label) * F.square(far))

    def score_spec(self) -> dict:
        return {"name": self.distance, "higher_is_similar": False}


class LogisticLoss(HybridBlock):
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


LOSSES: Dict[str, Callable] = {
    "contrastive": lambda cfg: ContrastiveLoss(cfg.margin, cfg.distance),
    "logistic": lambda cfg: LogisticLoss(),
}


def build_loss(cfg) -> HybridBlock:
    """The configured loss block; `cfg` is the `loss` config section."""
    if cfg.name not in LOSSES:
        raise UserError(f"loss.name: unknown loss {cfg.name!r} (valid: {', '.join(LOSSES)})")
    return LOSSES[cfg.name](cfg)
