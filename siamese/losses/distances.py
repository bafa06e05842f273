"""Distances between embeddings: one registry, each entry with its MXNet implementation (for
training, any `F`: ndarray or symbol), its all-pairs matrix (for mining in a batch) and its
numpy implementation (for scoring exports). Lower = more similar for every one of them.

Imports no mxnet: MXNet code receives its `F`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

import numpy as np

from ..errors import UserError

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


def euclidean_matrix(F, e):
    """(N, N) L2 distances between all rows of e (N, E), from the Gram matrix:
    |a|^2 + |b|^2 - 2 a.b, clipped at 0 (rounding), exactly 0 on the diagonal, + EPS under
    the root as for pairs.

    (N, N) work and one matrix product: the (N, N, E) differences took ~20x longer forward
    and backward at N = 160, E = 64 (siamese.commands.bench.baselines keeps them).
    """
    sq = F.sum(F.square(e), axis=1)  # (N,)
    d2 = F.broadcast_add(F.expand_dims(sq, 1), F.expand_dims(sq, 0)) - 2 * F.dot(
        e, e, transpose_b=True)
    i = F.contrib.arange_like(sq)
    off = F.broadcast_not_equal(F.expand_dims(i, 1), F.expand_dims(i, 0))  # 0 on the diagonal
    return F.sqrt(F.relu(d2) * off + EPS)


def cosine_matrix(F, e):
    """(N, N) cosine distances 1 - cos between all rows of e (N, E)."""
    unit = F.broadcast_div(e, F.sqrt(F.sum(F.square(e), axis=1, keepdims=True) + EPS))
    return 1.0 - F.dot(unit, unit, transpose_b=True)


def euclidean_np(e1: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """L2 distance per row, >= 0 (in [0, 2] for unit vectors); lower = more similar."""
    return np.sqrt(np.square(e1 - e2).sum(axis=1))


def cosine_np(e1: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """1 - cosine similarity per row, in [0, 2]; lower = more similar."""
    n1 = np.linalg.norm(e1, axis=1)
    n2 = np.linalg.norm(e2, axis=1)
    return 1.0 - (e1 * e2).sum(axis=1) / np.maximum(n1 * n2, 1e-12)


@dataclass(frozen=True)
class Distance:
    """A distance in both backends. `pairs(F, e1, e2)` -> (B,); `matrix(F, e)` -> (N, N);
    `numpy(e1, e2)` -> (n,). Lower = more similar."""

    name: str
    pairs: Callable
    matrix: Callable
    numpy: Callable[[np.ndarray, np.ndarray], np.ndarray]
    higher_is_similar: bool = False


DISTANCES: Dict[str, Distance] = {
    "euclidean": Distance("euclidean", euclidean, euclidean_matrix, euclidean_np),
    "cosine": Distance("cosine", cosine, cosine_matrix, cosine_np),
}


def get_distance(name: str) -> Distance:
    """The registered distance; UserError naming model.distance and the valid names."""
    if name not in DISTANCES:
        raise UserError(f"model.distance: unknown {name!r} (valid: {', '.join(DISTANCES)})")
    return DISTANCES[name]
