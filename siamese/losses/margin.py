"""Margin softmax over the training classes: CosFace (Wang et al. 2018, "CosFace: Large Margin
Cosine Loss"), the large-margin cosine loss insightface trains its MXNet face models with.

Embeddings and one learned weight vector per training class are L2-normalised; the logit of
class c is s * (cos(e, w_c) - m [c = y]) and the loss is softmax cross-entropy. The class
weights are training-only (never exported); at evaluation the embeddings are compared by
`model.distance` (cosine is the natural one).
"""

from __future__ import annotations

import mxnet as mx
from mxnet.gluon import HybridBlock

from .distances import EPS, get_distance


def _unit(F, x):
    return F.broadcast_div(x, F.sqrt(F.sum(F.square(x), axis=1, keepdims=True) + EPS))


class CosFaceLoss(HybridBlock):
    """Inputs: embeddings (N, E), class labels (N,) in 0..classes-1, image ids (N,) (unused);
    a P x K batch. Loss per image (N,).

    Args:
        classes: the number of classes the labels index (the folder's).
        embedding_size: E.
        scale: s, the logit scale.
        margin: m, subtracted from the cosine of the true class.
        distance: `model.distance`, the score at evaluation.
    """

    n_inputs = 1
    higher_is_similar = False

    def __init__(self, classes: int, embedding_size: int, scale: float = 30.0,
                 margin: float = 0.35, distance: str = "cosine", **kwargs):
        super().__init__(**kwargs)
        self.classes, self.scale, self.margin = classes, scale, margin
        self.distance = get_distance(distance).name
        with self.name_scope():
            self.weight = self.params.get("weight", shape=(classes, embedding_size))

    def hybrid_forward(self, F, e, labels, ids, weight):
        cos = F.FullyConnected(_unit(F, e), _unit(F, weight), no_bias=True,
                               num_hidden=self.classes)  # (N, classes)
        logits = self.scale * (cos - self.margin * F.one_hot(labels, self.classes))
        # (+ 0 x ids: the image ids of a P x K batch are not needed, but are an input)
        return -F.pick(F.log_softmax(logits, axis=1), labels, axis=1) + 0 * ids

    def example_targets(self, n: int, ctx) -> list:
        return [mx.nd.arange(n, ctx=ctx) % 2, mx.nd.arange(n, ctx=ctx)]

    def score_spec(self) -> dict:
        return {"name": self.distance, "higher_is_similar": False}
