"""Retrieval and open-set metrics on tiny examples computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from siamese.identification.retrieval import (
    dir_far_curve,
    open_set_metrics,
    retrieval_metrics,
    threshold_for_far,
)

A, B, C = 0, 1, 2


def test_retrieval_metrics_by_hand():
    # q0 (A, R=2): A B A B -> P@1 1, R-Prec 1/2, MAP@R (1/2)(1/1) = 1/2
    # q1 (B, R=1): A B A A -> P@1 0, R@2 1, R-Prec 0, MAP@R 0
    # q2 (A, R=3): A B A A -> P@1 1, R-Prec 2/3, MAP@R (1/3)(1/1 + 2/3) = 5/9
    # q3 (C, R=0): nothing to find, not counted
    neighbours = np.array([[A, B, A, B], [A, B, A, A], [A, B, A, A], [A, A, B, B]])
    m = retrieval_metrics(neighbours, np.array([A, B, A, C]), np.array([2, 1, 3, 0]))
    assert m["n_queries"] == 3 and m["n_skipped"] == 1
    assert m["precision_at_1"] == pytest.approx(2 / 3)
    assert m["recall_at_k"] == pytest.approx({"1": 2 / 3, "2": 1.0, "4": 1.0, "8": 1.0})
    assert m["r_precision"] == pytest.approx((1 / 2 + 0 + 2 / 3) / 3)
    assert m["map_at_r"] == pytest.approx((1 / 2 + 0 + 5 / 9) / 3)


def test_map_at_r_rewards_order_where_r_precision_does_not():
    # R = 2 both: the relevant ones first (MAP 1) or at positions 1 and 3 (out of R: 1/2)
    first = retrieval_metrics(np.array([[A, A, B]]), np.array([A]), np.array([2]))
    later = retrieval_metrics(np.array([[B, A, A]]), np.array([A]), np.array([2]))
    assert first["map_at_r"] == 1.0 and first["r_precision"] == 1.0
    assert later["r_precision"] == 0.5 and later["map_at_r"] == pytest.approx(0.25)


def test_threshold_for_far_lets_through_at_most_the_rate():
    imp = np.array([0.85, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.0, -0.1])
    t = threshold_for_far(imp, 0.1)  # one of ten may pass: just above the second highest
    assert 0.5 < t < 0.5 + 1e-12 and (imp >= t).sum() == 1
    assert (imp >= threshold_for_far(imp, 0.01)).sum() == 0
    assert (imp >= threshold_for_far(imp, 0.35)).sum() == 3
    assert threshold_for_far(np.array([0.4, 0.4, 0.1]), 0.34) > 0.4  # a tie cannot be split


def test_open_set_metrics_by_hand():
    # genuine probes: top-1 ids 0, 1, 1 (wrong: truth 0), 2 at similarities .9 .8 .95 .4
    top_ids = np.array([[0, 1], [1, 2], [1, 0], [2, 0]])
    top_sim = np.array([[0.9, 0.1], [0.8, 0.2], [0.95, 0.9], [0.4, 0.3]])
    truth = np.array([0, 1, 0, 2])
    imp = np.array([0.85, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.0, -0.1])
    m = open_set_metrics(top_ids, top_sim, truth, imp, (0.1, 0.01), threshold=0.35)
    assert m["rank1"] == 0.75 and m["cmc"] == [0.75, 1.0]
    # FAR 0.1: threshold just above 0.5 -> probes 0 and 1 detected and identified
    assert m["dir_at_far"]["0.1"]["dir"] == 0.5 and m["dir_at_far"]["0.1"]["far"] == 0.1
    # FAR 0.01: above 0.85 -> probe 0 only (probe 2 passes but names the wrong identity)
    assert m["dir_at_far"]["0.01"]["dir"] == 0.25 and m["dir_at_far"]["0.01"]["far"] == 0.0
    assert m["at_threshold"]["dir"] == 0.75 and m["at_threshold"]["far"] == 0.2
    far, dir_ = dir_far_curve(top_ids[:, 0] == truth, top_sim[:, 0], imp)
    assert far[0] == 0.0 and dir_[0] == 0.0 and far[-1] == 1.0 and dir_[-1] == 0.75
    assert np.all(np.diff(far) >= 0) and np.all(np.diff(dir_) >= 0)
