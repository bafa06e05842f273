"""Metrics against hand-computed cases and against scikit-learn on random scores."""

from __future__ import annotations

import numpy as np
import pytest

from siamese.eval.metrics import accuracy, auc, best_threshold, eer, verification


def test_auc_by_hand():
    # Positives 0.9, 0.4; negatives 0.5, 0.1. Pairs (pos > neg): 0.9>0.5, 0.9>0.1, 0.4>0.1
    # -> 3 of 4.
    assert auc([0.9, 0.4, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.75)


def test_auc_counts_ties_half():
    assert auc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    assert auc([0.5, 0.5, 0.9, 0.1], [1, 0, 1, 0]) == pytest.approx((1 + 1 + 1 + 0.5) / 4)


def test_eer_by_hand():
    # Perfectly separated: EER 0.
    assert eer([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == pytest.approx(0.0)
    # Scores 4 3 2 1 with labels 1 0 1 0: ROC steps (far, tar): (0,.5), (.5,.5), (.5,1).
    # FRR = 0.5 at far 0 and at far 0.5: they meet at 0.5.
    assert eer([4, 3, 2, 1], [1, 0, 1, 0]) == pytest.approx(0.5)


def test_accuracy_and_best_threshold_by_hand():
    s = [0.9, 0.7, 0.6, 0.2]
    y = [1, 0, 1, 0]
    assert accuracy(s, y, 0.65) == pytest.approx(0.5)  # accepts 0.9, 0.7
    t, acc = best_threshold(s, y)
    # Candidates: accept top 1 (acc .75), top 3 (acc .75): best two ties; middle picks one of
    # them, and its accuracy is 0.75.
    assert acc == pytest.approx(0.75)
    assert accuracy(s, y, t) == pytest.approx(0.75)
    assert t in (pytest.approx(0.8), pytest.approx(0.4))


def test_verification_on_distances_keeps_direction():
    # Distances: small = same. Same pairs 0.1, 0.3; different 0.8, 0.9.
    d = np.array([0.1, 0.3, 0.8, 0.9])
    y = np.array([1, 1, 0, 0])
    m = verification(d, y, higher_is_similar=False)
    assert m["auc"] == pytest.approx(1.0)
    assert m["accuracy"] == pytest.approx(1.0)
    assert 0.3 < m["threshold"] < 0.8  # in distance units, between the groups
    # A threshold chosen elsewhere is applied unchanged.
    fixed = verification(d, y, higher_is_similar=False, threshold=0.2)
    assert fixed["threshold"] == pytest.approx(0.2)
    assert fixed["accuracy"] == pytest.approx(0.75)


@pytest.mark.parametrize("seed", range(5))
def test_auc_and_roc_match_scikit_learn_on_random_scores(seed):
    from sklearn.metrics import roc_auc_score, roc_curve

    from siamese.eval.metrics import roc, tar_at_far

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    s = rng.normal(size=500) + y * 0.8
    s[:50] = np.round(s[:50], 1)  # some ties
    assert auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    far, tar, thr = roc(s, y)
    ref_far, ref_tar, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(far, ref_far, atol=1e-12)
    np.testing.assert_allclose(tar, ref_tar, atol=1e-12)
    for target in (0.1, 0.01):
        assert tar_at_far(s, y, target) == pytest.approx(ref_tar[ref_far <= target].max())
    # EER lies between the two error rates at the crossing point of the reference curve.
    e = eer(s, y)
    k = np.argmax(ref_far >= 1 - ref_tar)
    assert min(ref_far[k - 1], ref_far[k]) - 1e-12 <= e <= max(1 - ref_tar[k - 1], ref_far[k])
