"""Score embedding pairs in numpy: the one scoring path for evaluation, export and predict.

A score spec is the `score` object of `model.json`, e.g. `{"name": "euclidean",
"higher_is_similar": false, "threshold": 0.7}`: a distance of siamese.losses.distances (its
numpy implementation; training uses the MXNet one), or Koch's logistic head.
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from ..errors import UserError
from ..losses.distances import DISTANCES


def logistic(e1: np.ndarray, e2: np.ndarray, spec: dict) -> np.ndarray:
    """Koch et al. (2015): sigmoid(w . |e1 - e2| + b), probability in (0, 1) that the pair is
    the same; higher = more similar. `spec` holds `weights` (E,) and `bias`."""
    w = np.asarray(spec["weights"], np.float32)
    z = np.abs(e1 - e2) @ w + np.float32(spec["bias"])
    return 1.0 / (1.0 + np.exp(-z))


SCORERS: Dict[str, Callable[[np.ndarray, np.ndarray, dict], np.ndarray]] = {
    **{name: (lambda e1, e2, spec, d=d: d.numpy(e1, e2)) for name, d in DISTANCES.items()},
    "logistic": logistic,
}


def score_pairs(spec: dict, e1: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """Scores (n,) for embedding rows e1[k], e2[k] under a score spec."""
    if spec.get("name") not in SCORERS:
        raise UserError(f"score.name: unknown {spec.get('name')!r} (valid: {', '.join(SCORERS)})")
    return SCORERS[spec["name"]](np.asarray(e1, np.float32), np.asarray(e2, np.float32), spec)


def decide(spec: dict, scores: np.ndarray, threshold: float) -> np.ndarray:
    """True where a pair is judged the same: score >= t when higher is similar, else <= t."""
    return scores >= threshold if spec["higher_is_similar"] else scores <= threshold
