"""Thresholds: the one place a decision threshold is chosen, always on validation pairs, and
the verification figures at a threshold chosen elsewhere. numpy only."""

from __future__ import annotations

import numpy as np

from ..config import parse_threshold_rule
from .metrics import far_threshold, rates_at, verification


def choose_threshold(scores: np.ndarray, labels: np.ndarray, spec: dict, rule: str) -> dict:
    """{"threshold", "threshold_rule"} chosen on these (validation) pairs by an
    `eval.threshold` rule: `accuracy` (most pairs right) or `far:X` (false accept rate <= X,
    the most true accepts)."""
    kind, far = parse_threshold_rule(rule)
    if kind == "far":
        t = far_threshold(scores, labels, spec["higher_is_similar"], far)["threshold"]
    else:
        t = verification(scores, labels, spec["higher_is_similar"])["threshold"]
    return {"threshold": float(t), "threshold_rule": rule}


def pair_metrics(scores: np.ndarray, labels: np.ndarray, spec: dict, threshold=None) -> dict:
    """verification() with the spec's direction; threshold None = choose on these pairs."""
    return verification(scores, labels, spec["higher_is_similar"], threshold)


def with_threshold(spec: dict, scores: np.ndarray, labels: np.ndarray, rule: str) -> dict:
    """The score spec with the threshold chosen on these validation pairs by `rule`."""
    return dict(spec, **choose_threshold(scores, labels, spec, rule))


def threshold_report(spec: dict, rule: str, val: tuple, test: tuple) -> tuple:
    """(val metrics, test metrics, spec with threshold): the threshold is chosen on `val`
    (scores, labels) by `rule` and applied unchanged to `test`; both get their TAR and FAR."""
    spec = with_threshold(spec, *val, rule)
    out = []
    for scores, labels in (val, test):
        m = pair_metrics(scores, labels, spec, spec["threshold"])
        m.update(rates_at(scores, labels, spec["higher_is_similar"], spec["threshold"]),
                 threshold_rule=rule)
        out.append(m)
    return out[0], out[1], spec
