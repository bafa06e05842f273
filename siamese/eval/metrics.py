"""Verification metrics in plain numpy.

Inputs: `scores` (n,) and `labels` (n,) with 1 = same, 0 = different. Functions that take
`higher_is_similar` accept distances too (pass False); thresholds are returned in the score's
own units, and "same" means score >= t (similarities) or score <= t (distances).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np


def _check(scores: np.ndarray, labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(bool)
    if len(s) != len(y) or not len(s):
        raise ValueError(f"scores ({len(s)}) and labels ({len(y)}) must be equal, non-empty")
    if y.all() or not y.any():
        raise ValueError("labels need both same (1) and different (0) pairs")
    return s, y


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve for similarities (higher = same), ties counted half.

    The Mann-Whitney statistic: the probability that a random same pair outscores a random
    different pair. In [0, 1]; 0.5 is chance.
    """
    s, y = _check(scores, labels)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # Average rank (1-based) over each run of tied scores.
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    p, n = y.sum(), (~y).sum()
    return float((ranks[y].sum() - p * (p + 1) / 2.0) / (p * n))


def roc(scores: np.ndarray, labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points for similarities, one per distinct threshold, from accept-none to accept-all.

    Returns:
        far (false accept rate), tar (true accept rate), thresholds (accept when s >= t);
        the first point is (0, 0) with threshold +inf.
    """
    s, y = _check(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    far = np.r_[0.0, fp / (~y).sum()]
    tar = np.r_[0.0, tp / y.sum()]
    return far, tar, np.r_[np.inf, s[last]]


def eer(scores: np.ndarray, labels: np.ndarray) -> float:
    """Equal error rate: where false accepts equal false rejects, linearly interpolated on ROC."""
    far, tar, _ = roc(scores, labels)
    frr = 1.0 - tar
    k = int(np.argmax(far >= frr))  # first point where false accepts catch up
    if k == 0:
        return float(far[0])
    d0, d1 = frr[k - 1] - far[k - 1], frr[k] - far[k]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(far[k - 1] + t * (far[k] - far[k - 1]))


def tar_at_far(scores: np.ndarray, labels: np.ndarray, target: float) -> float:
    """The highest true accept rate whose false accept rate is at most `target`."""
    far, tar, _ = roc(scores, labels)
    return float(tar[far <= target].max())


def accuracy(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Share of pairs decided right when "same" means similarity >= threshold."""
    s, y = _check(scores, labels)
    return float(np.mean((s >= threshold) == y))


def point_threshold(thr: np.ndarray, k: int) -> float:
    """A similarity threshold that reproduces ROC point k of `roc(...)`'s thresholds: midway
    between the lowest accepted and the highest rejected distinct score (point 0 accepts
    nothing, the last point everything)."""
    distinct = thr[1:]  # descending; point k accepts every score >= distinct[k - 1]
    if k == 0:
        return float(distinct[0] + 1.0)
    if k == len(distinct):
        return float(distinct[-1] - 1.0)
    return float((distinct[k - 1] + distinct[k]) / 2.0)


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> Tuple[float, float]:
    """The similarity threshold that maximises accuracy on these pairs, and that accuracy.

    Thresholds are midpoints between consecutive distinct scores; among equally good ones the
    middle one is taken. Use it on validation pairs only: on scored pairs it is an oracle.
    """
    s, y = _check(scores, labels)
    far, tar, thr = roc(s, y)
    p, n = y.sum(), (~y).sum()
    acc = (tar * p + (1.0 - far) * n) / len(s)  # accept all with score >= thr[k]
    best = np.flatnonzero(acc == acc.max())
    k = int(best[len(best) // 2])
    return point_threshold(thr, k), float(acc[k])


def far_threshold(scores: np.ndarray, labels: np.ndarray, higher_is_similar: bool,
                  target: float) -> Dict[str, float]:
    """The threshold whose false accept rate on these pairs is at most `target` with the most
    true accepts (choose it on validation pairs).

    Returns:
        {"threshold" (score units, midway to the next distinct score), "far", "tar"}, the
        rates on these pairs at that threshold.
    """
    sign = 1.0 if higher_is_similar else -1.0
    far, tar, thr = roc(sign * np.asarray(scores, np.float64), labels)
    k = int(np.flatnonzero(far <= target).max())  # the ROC point with the most accepts
    t = point_threshold(thr, k)
    return {"threshold": float(sign * t), "far": float(far[k]), "tar": float(tar[k])}


def rates_at(scores: np.ndarray, labels: np.ndarray, higher_is_similar: bool,
             threshold: float) -> Dict[str, float]:
    """{"tar", "far"}: true and false accept rates of these pairs at a given threshold."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(bool)
    same = s >= threshold if higher_is_similar else s <= threshold
    return {"tar": float(same[y].mean()), "far": float(same[~y].mean())}


def verification(
    scores: np.ndarray, labels: np.ndarray, higher_is_similar: bool,
    threshold: Optional[float] = None,
) -> Dict[str, float]:
    """AUC, EER, accuracy and threshold of a scored pair set.

    Args:
        scores: similarities or distances (n,).
        labels: 1 = same, 0 = different (n,).
        higher_is_similar: False for distances.
        threshold: in the scores' units, chosen elsewhere (validation). None picks the
            accuracy-maximising one on these pairs (do that on validation pairs only).
    Returns:
        {"auc", "eer", "accuracy", "threshold", "n_pairs"}.
    """
    sign = 1.0 if higher_is_similar else -1.0
    s = sign * np.asarray(scores, np.float64)
    t = best_threshold(s, labels)[0] if threshold is None else sign * float(threshold)
    return {
        "auc": auc(s, labels),
        "eer": eer(s, labels),
        "accuracy": accuracy(s, labels, t),
        "threshold": sign * t,
        "n_pairs": int(len(s)),
    }


def kfold_accuracy(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray,
                   higher_is_similar: bool) -> Dict[str, object]:
    """The LFW protocol: each fold is scored at the threshold chosen on all the other folds.

    Args:
        folds: (n,) fold index of each pair (at least 2 distinct folds).
    Returns:
        {"mean", "std", "accuracies" (per fold), "thresholds" (per fold, score units)}.
    """
    sign = 1.0 if higher_is_similar else -1.0
    s = sign * np.asarray(scores, np.float64)
    y = np.asarray(labels)
    folds = np.asarray(folds)
    accs, thrs = [], []
    for f in np.unique(folds):
        test = folds == f
        t, _ = best_threshold(s[~test], y[~test])
        accs.append(float(np.mean((s[test] >= t) == y[test].astype(bool))))
        thrs.append(sign * t)
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "accuracies": accs,
            "thresholds": thrs}


def wilson_interval(successes: int, n: int, z: float = 1.96) -> Tuple[float, float]:
    """95% (z = 1.96) Wilson score interval of a proportion; stays inside [0, 1]."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))
