"""Retrieval and open-set identification metrics: plain numpy, named floats.

Retrieval (every image queries all the others, leave-one-out), as in Musgrave, Belongie and Lim,
"A Metric Learning Reality Check" (ECCV 2020): for a query whose class has R other images,
- Precision@1: the nearest neighbour is of the query's class;
- Recall@k: at least one of the k nearest is of the query's class (the metric-learning
  convention, not the information-retrieval recall);
- R-Precision: the share of the query's class among its R nearest;
- MAP@R: (1/R) sum over i <= R of P(i) * rel(i), P(i) the precision of the i nearest, rel(i)
  whether the i-th is of the query's class.
Queries with R = 0 (a class of one image) have nothing to find and are not counted.

Open set (a gallery of enrolled identities, probes of enrolled and of unknown identities), the
1:N convention of face recognition evaluations: a genuine probe is detected and identified at a
threshold when its best identity is its own and passes the threshold; an impostor probe is a
false alarm when its best identity passes. DIR@FAR: the detection and identification rate at the
threshold that lets through the given share of impostors.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

KS = (1, 2, 4, 8)
OPEN_SET_FARS = (0.1, 0.01)


def retrieval_metrics(neighbours: np.ndarray, query_labels: np.ndarray, relevant: np.ndarray,
                      ks: Sequence[int] = KS) -> Dict[str, object]:
    """Leave-one-out retrieval figures.

    Args:
        neighbours: (Q, K) labels of each query's nearest items, best first, the query itself
            excluded; K >= max(R, max(ks)) where the data allows it.
        query_labels: (Q,) each query's label.
        relevant: (Q,) R, the number of other items of the query's label.
    Returns:
        precision_at_1, recall_at_k {k: value}, r_precision, map_at_r (all in [0, 1]),
        n_queries (queries with R >= 1), n_skipped (R = 0).
    """
    neighbours = np.asarray(neighbours)
    keep = np.asarray(relevant) > 0
    hits = neighbours[keep] == np.asarray(query_labels)[keep, None]  # (Q', K) bool
    r = np.asarray(relevant)[keep]
    n, k_all = hits.shape if hits.ndim == 2 else (0, 0)
    if n == 0:
        return {"precision_at_1": float("nan"), "recall_at_k": {str(k): float("nan") for k in ks},
                "r_precision": float("nan"), "map_at_r": float("nan"), "n_queries": 0,
                "n_skipped": int((~keep).sum())}
    rank = np.arange(1, k_all + 1)
    within_r = rank[None, :] <= r[:, None]  # (Q', K): the first R positions
    hits_r = hits & within_r
    precision_i = np.cumsum(hits_r, axis=1) / rank[None, :]
    return {
        "precision_at_1": float(hits[:, 0].mean()),
        "recall_at_k": {str(k): float(hits[:, :k].any(axis=1).mean()) for k in ks},
        "r_precision": float((hits_r.sum(axis=1) / r).mean()),
        "map_at_r": float(((precision_i * hits_r).sum(axis=1) / r).mean()),
        "n_queries": int(n), "n_skipped": int((~keep).sum()),
    }


def threshold_for_far(impostor: np.ndarray, far: float) -> float:
    """The lowest similarity threshold t (accept when similarity >= t) that lets through at
    most `far` of the impostor similarities: just above the (k+1)-th highest impostor, k the
    number allowed (the best detection rate at that false-alarm rate)."""
    imp = np.sort(np.asarray(impostor, np.float64))[::-1]
    if len(imp) == 0:
        return float("-inf")
    allowed = int(np.floor(far * len(imp) + 1e-9))
    if allowed >= len(imp):
        return float(imp[-1])
    return float(np.nextafter(imp[allowed], np.inf))


def open_set_metrics(top_ids: np.ndarray, top_sim: np.ndarray, truth: np.ndarray,
                     impostor_sim: np.ndarray, fars: Sequence[float] = OPEN_SET_FARS,
                     threshold: float = None, max_rank: int = 20) -> Dict[str, object]:
    """Open-set identification figures, all as similarities (higher = more alike).

    Args:
        top_ids: (G, K) identities ranked for each genuine probe, best first.
        top_sim: (G, K) their similarities.
        truth: (G,) each genuine probe's identity.
        impostor_sim: (I,) each impostor probe's best similarity over the gallery.
        fars: false-alarm rates for DIR@FAR.
        threshold: a decision threshold (similarity) to report DIR and FAR at, if given.
        max_rank: length of the CMC curve.
    Returns:
        rank1, cmc [rank-1 .. rank-k identification rates], dir_at_far {far: {threshold
        (similarity), dir, far}}, and at_threshold {dir, far} when a threshold is given.
    """
    top_ids, top_sim = np.asarray(top_ids), np.asarray(top_sim, np.float64)
    correct = top_ids == np.asarray(truth)[:, None]  # (G, K)
    ranks = min(max_rank, correct.shape[1])
    cmc = [float(correct[:, :k].any(axis=1).mean()) for k in range(1, ranks + 1)]
    first = correct[:, 0]
    out: Dict[str, object] = {"rank1": cmc[0] if cmc else float("nan"), "cmc": cmc,
                              "n_genuine": int(len(first)), "n_impostor": int(len(impostor_sim))}

    def at(t: float) -> dict:
        return {"dir": float((first & (top_sim[:, 0] >= t)).mean()),
                "far": float((np.asarray(impostor_sim) >= t).mean())}

    out["dir_at_far"] = {}
    for far in fars:
        t = threshold_for_far(impostor_sim, far)
        out["dir_at_far"][str(far)] = dict(at(t), threshold=t, target_far=float(far))
    if threshold is not None:
        out["at_threshold"] = dict(at(threshold), threshold=float(threshold))
    return out


def dir_far_curve(first_correct: np.ndarray, genuine_sim: np.ndarray, impostor_sim: np.ndarray):
    """(far, dir) arrays over every impostor similarity as threshold, for the DIR-vs-FAR plot."""
    imp = np.sort(np.asarray(impostor_sim, np.float64))
    hit = np.sort(np.asarray(genuine_sim, np.float64)[np.asarray(first_correct, bool)])
    ts = np.unique(np.concatenate([[np.inf], imp]))[::-1]
    far = (len(imp) - np.searchsorted(imp, ts, "left")) / max(len(imp), 1)
    dir_ = (len(hit) - np.searchsorted(hit, ts, "left")) / max(len(genuine_sim), 1)
    return far, dir_
