"""N-way K-shot identification episodes on embeddings (numpy only).

An episode picks N classes, K support images of each and one query image from one of those
classes (never among the supports). The query is assigned the class of its most similar support
image (nearest neighbour under the model's score). Seeded: same seed, same episodes.
"""

from __future__ import annotations

import logging
from typing import Dict

import numpy as np

from ..errors import UserError
from ..scoring.scores import score_pairs
from .metrics import wilson_interval

log = logging.getLogger(__name__)


def eligible_classes(labels: np.ndarray, shots: int, names=None) -> np.ndarray:
    """Classes with at least K + 1 images (K supports and a query); others are skipped."""
    classes, counts = np.unique(labels, return_counts=True)
    for c, m in zip(classes, counts):
        if m < shots + 1:
            name = names[c] if names is not None else c
            log.warning("class %s has %d image(s), fewer than shots + 1 = %d: skipped in n-way",
                        name, m, shots + 1)
    return classes[counts >= shots + 1]


def group_pools(usable: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                n_way: int) -> list:
    """The usable classes of each group holding at least N of them (within-group episodes);
    smaller groups are skipped with a warning, UserError when none is left."""
    of_class = {c: groups[np.flatnonzero(labels == c)[0]] for c in usable}
    pools = {}
    for c in usable:
        pools.setdefault(of_class[c], []).append(c)
    small = [g for g, cs in pools.items() if len(cs) < n_way]
    if small:
        log.warning("%d group(s) with fewer than %d usable classes: skipped in within-group "
                    "%d-way episodes", len(small), n_way, n_way)
    kept = [np.asarray(cs) for g, cs in sorted(pools.items()) if len(cs) >= n_way]
    if not kept:
        raise UserError(f"--n-way {n_way} within group: no group has {n_way} classes with "
                        f"enough images (largest: {max(len(c) for c in pools.values())})")
    return kept


def sample_episodes(labels: np.ndarray, n_way: int, shots: int, episodes: int,
                    seed: int, names=None, groups=None) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    """Image indices of seeded episodes.

    groups: (M,) group of each image: every episode's N classes come from one group (drawn
    uniformly among the groups with N usable classes), as Lake's Omniglot runs do.
    Returns:
        support (E, N, K) indices, query (E,) indices, answer (E,) position in 0..N-1 of the
        query's class among the episode's N classes.
    Raises:
        UserError: fewer eligible classes than N.
    """
    usable = eligible_classes(labels, shots, names)
    if n_way > len(usable):
        raise UserError(f"--n-way {n_way}: only {len(usable)} classes have at least "
                        f"{shots + 1} images (shots + 1)")
    pools = [usable] if groups is None else group_pools(usable, labels, groups, n_way)
    rng = np.random.default_rng([seed, n_way, shots])
    members = {c: np.flatnonzero(labels == c) for c in usable}
    support = np.empty((episodes, n_way, shots), np.int64)
    query = np.empty(episodes, np.int64)
    answer = rng.integers(0, n_way, episodes)
    for e in range(episodes):
        pool = pools[0] if len(pools) == 1 else pools[rng.integers(0, len(pools))]
        chosen = rng.choice(pool, n_way, replace=False)
        for k, c in enumerate(chosen):
            take = shots + 1 if k == answer[e] else shots
            picked = rng.choice(members[c], take, replace=False)
            support[e, k] = picked[:shots]
            if k == answer[e]:
                query[e] = picked[shots]
    return support, query, answer


def n_way_accuracy(emb, labels: np.ndarray, spec: dict, n_way: int, shots: int,
                   episodes: int, seed: int, names=None, groups=None) -> Dict[str, object]:
    """Accuracy of nearest-support identification over seeded episodes, with a 95% CI.

    Args:
        emb: (M, E) embeddings of the images, row m for image m; or a function
            (query indices (n,), support indices (n,)) -> scores (n,) for models that score
            pairs (the query is the left image, the support the right one).
        labels: (M,) class of each image.
        spec: the model's score spec (direction from `higher_is_similar`).
        groups: (M,) group of each image: episodes within one group (see sample_episodes).
    Returns:
        {"accuracy", "ci95": [low, high], "episodes", "shots"}.
    """
    support, query, answer = sample_episodes(labels, n_way, shots, episodes, seed, names,
                                             groups)
    e, n, k = support.shape
    q = np.repeat(query, n * k)
    if callable(emb):
        scores = np.asarray(emb(q, support.reshape(-1))).reshape(e, n, k)
    else:
        scores = score_pairs(spec, emb[q], emb[support.reshape(-1)]).reshape(e, n, k)
    per_class = scores.max(axis=2) if spec["higher_is_similar"] else -scores.min(axis=2)
    correct = int((per_class.argmax(axis=1) == answer).sum())
    lo, hi = wilson_interval(correct, e)
    return {"accuracy": correct / e, "ci95": [lo, hi], "episodes": e, "shots": shots}
