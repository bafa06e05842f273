"""Score embedding pairs in numpy: the one scoring path for evaluation, export and predict.

A score spec is the `score` object of `model.json`, e.g. `{"name": "euclidean",
"higher_is_similar": false, "threshold": 0.7}`. Training computes the same quantities with
MXNet operators in `siamese.losses`.
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from .errors import UserError


def euclidean(e1: np.ndarray, e2: np.ndarray, spec: dict) -> np.ndarray:
    """L2 distance per row, >= 0 (in [0, 2] for unit vectors); lower = more similar."""
    return np.sqrt(np.square(e1 - e2).sum(axis=1))


def cosine(e1: np.ndarray, e2: np.ndarray, spec: dict) -> np.ndarray:
    """1 - cosine similarity per row, in [0, 2]; lower = more similar."""
    n1 = np.linalg.norm(e1, axis=1)
    n2 = np.linalg.norm(e2, axis=1)
    return 1.0 - (e1 * e2).sum(axis=1) / np.maximum(n1 * n2, 1e-12)


def logistic(e1: np.ndarray, e2: np.ndarray, spec: dict) -> np.ndarray:
    """Koch et al. (2015): sigmoid(w . |e1 - e2| + b), probability in (0, 1) that the pair is
    the same; higher = more similar. `spec` holds `weights` (E,) and `bias`."""
    w = np.asarray(spec["weights"], np.float32)
    z = np.abs(e1 - e2) @ w + np.float32(spec["bias"])
    return 1.0 / (1.0 + np.exp(-z))


SCORERS: Dict[str, Callable[[np.ndarray, np.ndarray, dict], np.ndarray]] = {
    "euclidean": euclidean, "cosine": cosine, "logistic": logistic,
}


def score_pairs(spec: dict, e1: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """Scores (n,) for embedding rows e1[k], e2[k] under a score spec."""
    if spec.get("name") not in SCORERS:
        raise UserError(f"score.name: unknown {spec.get('name')!r} (valid: {', '.join(SCORERS)})")
    return SCORERS[spec["name"]](np.asarray(e1, np.float32), np.asarray(e2, np.float32), spec)


def decide(spec: dict, scores: np.ndarray, threshold: float) -> np.ndarray:
    """True where a pair is judged the same: score >= t when higher is similar, else <= t."""
    return scores >= threshold if spec["higher_is_similar"] else scores <= threshold
