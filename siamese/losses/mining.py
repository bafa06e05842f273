"""Triplet mining inside a batch on (N, N) arrays only: each anchor's negatives are sorted once
(no gradient), and every (anchor, positive) pair finds its place among them by a binary search
of STEPS halvings. The mathematics are those of the (N, N, N) formulation
(siamese.commands.bench.baselines), which tests compare against.

Every miner: (F, d, pos, neg, margin) -> loss per anchor (N,), where d (N, N) holds the
distances d(a, x), pos and neg (N, N) are 0/1 masks of valid positives and negatives.
"""

from __future__ import annotations

from typing import Callable, Dict

BIG = 1e6  # added to what is not a negative, so that it sorts after every negative
STEPS = 13  # binary search halvings: exact for batches of up to 2**13 - 1 = 8191 images


def _rows(F, idx):
    """(N, Q) row number of every element of idx (N, Q)."""
    return F.broadcast_like(F.expand_dims(F.contrib.arange_like(idx, axis=0), 1), idx)


def _last(F, x):
    """(1,) the last column number of x (N, M): M - 1."""
    return F.max(F.contrib.arange_like(x, axis=1))


def _gather(F, x, idx):
    """x[a, idx[a, q]] for x (N, M), idx (N, Q) -> (N, Q); differentiable in x. `take` on the
    flattened rows: 2x faster here than gather_nd."""
    flat = F.broadcast_add(F.broadcast_mul(_rows(F, idx), _last(F, x) + 1), idx)
    return F.take(F.reshape(x, (-1,)), flat)


def count_at_most(F, s, v):
    """(N, Q) number of entries of the ascending rows s (N, M) that are <= v[a, q] (N, Q)."""
    last = _last(F, s)
    c = F.zeros_like(v)
    for k in reversed(range(STEPS)):
        idx = c + (2 ** k - 1)  # 0-based position of the last entry if c grows by 2**k
        inside = F.broadcast_lesser_equal(idx, last)
        at = _gather(F, s, F.broadcast_minimum(idx, last))
        c = c + (2 ** k) * inside * (at <= v)
    return c


def _sorted_negatives(F, d, neg):
    """(order, values) (N, N): each row's negatives by increasing distance, then the rest."""
    masked = F.BlockGrad(d) + BIG * (1 - neg)
    return F.argsort(masked, axis=1), F.sort(masked, axis=1)


def _per_anchor(F, per_pair, pos):
    return F.sum(per_pair * pos, axis=1) / F.maximum(F.sum(pos, axis=1), 1)


def hard(F, d, pos, neg, margin):
    """The closest negative of each anchor, for all its positives."""
    pick = F.argmin(F.BlockGrad(d) + BIG * (1 - neg), axis=1)  # (N,)
    d_an = F.broadcast_like(F.expand_dims(F.pick(d, pick, axis=1), 1), d)  # (N, N)
    return _per_anchor(F, F.relu(d - d_an + margin), pos)


def semi_hard(F, d, pos, neg, margin):
    """For (a, p): the closest negative farther than p, min d(a, n) with d(a, n) > d(a, p);
    without one, the farthest negative of a."""
    order, values = _sorted_negatives(F, d, neg)
    c = count_at_most(F, values, F.BlockGrad(d))  # (N, N): negatives not farther than p
    exists = F.broadcast_lesser(c, F.sum(neg, axis=1, keepdims=True))
    semi = _gather(F, order, F.broadcast_minimum(c, _last(F, d)))  # (N, N) its index
    far = F.argmax(F.BlockGrad(d) - BIG * (1 - neg), axis=1)  # (N,) farthest negative
    choice = F.where(exists, semi, F.broadcast_like(F.expand_dims(far, 1), d))
    return _per_anchor(F, F.relu(d - _gather(F, d, choice) + margin), pos)


def all_triplets(F, d, pos, neg, margin):
    """Mean of max(0, d(a, p) - d(a, n) + margin) over every valid (p, n) of an anchor.

    For (a, p), the c negatives with d(a, n) <= d(a, p) + margin give
    c * (d(a, p) + margin) - (sum of their distances): a prefix sum of the sorted row.
    """
    order, values = _sorted_negatives(F, d, neg)
    sorted_d = _gather(F, d, order) * _gather(F, neg, order)  # (N, N), 0 past the negatives
    col = F.contrib.arange_like(d, axis=1)
    upper = F.broadcast_lesser_equal(F.expand_dims(col, 1), F.expand_dims(col, 0))  # j <= k
    prefix = F.dot(sorted_d, upper)  # [a, k] = sum of the k + 1 closest negatives
    c = count_at_most(F, values, F.BlockGrad(d) + margin)  # (N, N)
    taken = _gather(F, prefix, F.maximum(c - 1, 0)) * (c > 0)
    total = F.sum((c * (d + margin) - taken) * pos, axis=1)
    count = F.sum(pos, axis=1) * F.sum(neg, axis=1)
    return total / F.maximum(count, 1)


MINERS: Dict[str, Callable] = {"none": all_triplets, "semi_hard": semi_hard, "hard": hard}
