"""The (N, N) miners against the former (N, N, N) formulation and against counts by hand."""

from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest

from siamese.commands.bench.baselines import CubeBatchTripletLoss, euclidean_cube
from siamese.losses.distances import euclidean_matrix
from siamese.losses.mining import count_at_most
from siamese.losses.triplet import BatchTripletLoss


def test_count_at_most_by_hand():
    s = mx.nd.array([[0.5, 1.0, 1.0, 3.0], [2.0, 2.0, 2.0, 9.0]])
    v = mx.nd.array([[0.4, 1.0, 2.0, 5.0], [2.0, 1.9, 9.0, 10.0]])
    # ties count (<=): 1.0 has two entries at most 1.0 beside 0.5
    np.testing.assert_array_equal(count_at_most(mx.nd, s, v).asnumpy(),
                                  [[0, 3, 3, 4], [3, 0, 4, 4]])


def test_euclidean_matrix_from_the_gram_matrix_equals_the_differences():
    e = mx.nd.array(np.random.default_rng(1).normal(size=(30, 16)))
    np.testing.assert_allclose(euclidean_matrix(mx.nd, e).asnumpy(),
                               euclidean_cube(mx.nd, e).asnumpy(), rtol=1e-5, atol=1e-6)


def _loss_and_grad(cls, e, labels, ids, distance, mining, hybrid):
    loss = cls(0.5, distance, mining)
    if hybrid:
        loss.hybridize()
    x = e.copy()
    x.attach_grad()
    with mx.autograd.record():
        out = loss(x, labels, ids)
    out.backward()
    return out.asnumpy(), x.grad.asnumpy()


@pytest.mark.parametrize("mining", ["none", "semi_hard", "hard"])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("hybrid", [False, True])
def test_pair_miners_equal_the_cube_formulation(mining, distance, hybrid):
    """Random embeddings, 6 classes x 7 images, some images repeated (same id): loss values
    and gradients of the (N, N) miners equal the (N, N, N) ones within float rounding."""
    rng = np.random.default_rng(0)
    for trial in range(3):
        e = mx.nd.array(rng.normal(size=(42, 8)) * (0.3 if trial == 2 else 1.0))
        labels = mx.nd.array(np.repeat(np.arange(6), 7))
        ids = mx.nd.array(np.arange(42) % 39)  # images 0, 1, 2 appear twice
        new = _loss_and_grad(BatchTripletLoss, e, labels, ids, distance, mining, hybrid)
        old = _loss_and_grad(CubeBatchTripletLoss, e, labels, ids, distance, mining, hybrid)
        np.testing.assert_allclose(new[0], old[0], atol=5e-6)
        np.testing.assert_allclose(new[1], old[1], atol=5e-6)
        assert (old[0] > 0).any()
