"""Losses and scoring against values computed by hand, including distance 0."""

from __future__ import annotations

import math

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from siamese.config import LossConfig
from siamese.errors import UserError
from siamese.losses.pair import ContrastiveLoss, LogisticLoss
from siamese.losses.registry import build_loss
from siamese.models.architectures import get_architecture
from siamese.scoring.scores import decide, score_pairs
from siamese.train.pairing import Pairing, get_pairing


def nd(rows):
    return mx.nd.array(np.asarray(rows, np.float32))


def test_contrastive_by_hand():
    # Pair 0: same, d = 5 (3-4-5) -> 0.5 * 25 = 12.5.
    # Pair 1: different, d = 0.5 < margin 2 -> 0.5 * (2 - 0.5)^2 = 1.125.
    # Pair 2: different, d = 3 >= margin -> 0.
    e1 = nd([[0, 0], [0, 0], [0, 0]])
    e2 = nd([[3, 4], [0.5, 0], [3, 0]])
    out = ContrastiveLoss(margin=2.0)(e1, e2, nd([1, 0, 0])).asnumpy()
    np.testing.assert_allclose(out, [12.5, 1.125, 0.0], rtol=1e-5, atol=1e-6)


def test_contrastive_cosine_by_hand():
    # Orthogonal unit vectors: cosine distance 1; same pair -> 0.5 * 1 = 0.5.
    out = ContrastiveLoss(1.5, "cosine")(nd([[1, 0]]), nd([[0, 1]]), nd([1])).asnumpy()
    np.testing.assert_allclose(out, [0.5], rtol=1e-5)


@pytest.mark.parametrize("label, expected", [(1, 0.0), (0, 0.5)])
def test_contrastive_at_distance_zero_is_finite(label, expected):
    # Identical embeddings: loss 0 (same) or 0.5 * margin^2 (different), gradients finite.
    e1 = nd([[0.6, 0.8]])
    e2 = nd([[0.6, 0.8]])
    for x in (e1, e2):
        x.attach_grad()
    with autograd.record():
        loss = ContrastiveLoss(margin=1.0)(e1, e2, nd([label]))
    loss.backward()
    np.testing.assert_allclose(loss.asnumpy(), [expected], atol=1e-6)
    for x in (e1, e2):
        g = x.grad.asnumpy()
        assert np.isfinite(g).all(), g


def test_logistic_by_hand():
    block = LogisticLoss()
    block.initialize()
    e1, e2 = nd([[1, 2], [0, 0]]), nd([[0, 0], [0, 0]])
    block(e1, e2, nd([1, 0]))
    block.head.weight.set_data(nd([[0.5, -1.0]]))
    block.head.bias.set_data(nd([0.25]))
    # z = 0.5*1 - 1*2 + 0.25 = -1.25 for pair 0; z = 0.25 for pair 1.
    out = block(e1, e2, nd([1, 0])).asnumpy()
    bce = [math.log1p(math.exp(1.25)), math.log1p(math.exp(0.25))]  # -log s(z), -log(1 - s(z))
    np.testing.assert_allclose(out, bce, rtol=1e-5)
    spec = block.score_spec()
    assert spec["higher_is_similar"] is True
    scores = score_pairs(spec, e1.asnumpy(), e2.asnumpy())
    np.testing.assert_allclose(scores, [1 / (1 + math.exp(1.25)), 1 / (1 + math.exp(-0.25))],
                               rtol=1e-6)


def test_scoring_distances_and_decisions_by_hand():
    a = np.array([[0, 0], [1, 0]], np.float32)
    b = np.array([[3, 4], [0, 1]], np.float32)
    spec = {"name": "euclidean", "higher_is_similar": False}
    d = score_pairs(spec, a, b)
    np.testing.assert_allclose(d, [5.0, math.sqrt(2)], rtol=1e-6)
    assert decide(spec, d, 2.0).tolist() == [False, True]  # distance: same when <= threshold
    cos = score_pairs({"name": "cosine", "higher_is_similar": False}, a[1:], b[1:])
    np.testing.assert_allclose(cos, [1.0], rtol=1e-6)


def test_unknown_loss_lists_valid_names():
    with pytest.raises(UserError, match="loss.name: unknown loss 'hinge' .*contrastive, "
                                        "logistic, triplet"):
        get_pairing("hinge", "pairs", get_architecture("siamese"))
    with pytest.raises(UserError, match="contrastive, logistic, pair_score"):
        build_loss(LossConfig(name="hinge"), "euclidean")


def test_pairing_chooses_batches_and_loss_once():
    siamese, two_channel = get_architecture("siamese"), get_architecture("two_channel")
    assert get_pairing("triplet", "pk", siamese) == Pairing("pk", "batch_triplet")
    assert get_pairing("triplet", "pairs", siamese) == Pairing("triplets", "triplet")
    assert get_pairing("logistic", "pairs", two_channel).loss == "pair_score"
    assert not get_pairing("none", "pairs", siamese).labelled
    with pytest.raises(UserError, match="data.sampler: pk does not go with loss.name: "
                                        "contrastive"):
        get_pairing("contrastive", "pk", siamese)
