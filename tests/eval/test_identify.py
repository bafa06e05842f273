"""Ranking identities over a gallery, the unknown decision and the open-set calibration."""

from __future__ import annotations

import numpy as np
import pytest

from siamese.errors import UserError
from siamese.identification.ranking import (
    UNKNOWN,
    calibrate_open_set,
    calibration_threshold,
    candidates_needed,
    decisions,
    rank_identities,
)
from siamese.identification.search import build_index

SPEC = {"name": "euclidean", "higher_is_similar": False, "threshold": 0.5}
# three identities on a line: 0 at x=0 (two images), 1 at x=1, 2 at x=3 (two images)
GALLERY = np.array([[0.0], [0.1], [1.0], [3.0], [3.2]], np.float32)
LABELS = np.array([0, 0, 1, 2, 2])
NAMES = ["ann", "bob", "cat"]


def ranked(probes, k):
    index = build_index(GALLERY, SPEC, "exact")
    return rank_identities(index, GALLERY, LABELS, SPEC, np.array(probes, np.float32), k)


def test_an_identity_scores_its_nearest_image_and_appears_once():
    r = ranked([[0.05], [2.9]], 3)
    assert r.ids.tolist() == [[0, 1, 2], [2, 1, 0]]
    np.testing.assert_allclose(-r.sim, [[0.05, 0.95, 2.95], [0.1, 1.9, 2.8]], atol=1e-6)


def test_top_k_is_capped_by_the_identities_enrolled():
    assert ranked([[0.0]], 10).ids.shape == (1, 3)
    assert candidates_needed(LABELS, 2) == 4  # 2 identities x at most 2 images each


def test_unknown_beyond_the_threshold():
    out = decisions(ranked([[0.05], [1.8], [3.15]], 2), NAMES, SPEC, 0.5)
    assert [d["identity"] for d in out] == ["ann", UNKNOWN, "cat"]
    assert out[1]["best"]["identity"] == "bob" and out[1]["best"]["score"] == pytest.approx(0.8)
    assert [t["identity"] for t in out[0]["top"]] == ["ann", "bob"]
    # the same probe is known under a looser threshold
    assert decisions(ranked([[1.8]], 1), NAMES, SPEC, 0.81)[0]["identity"] == "bob"


def test_calibration_chooses_the_threshold_on_impostors():
    genuine = ranked([[0.05], [0.9], [3.1], [2.5]], 1)  # distances .05 .1 .1 .5
    truth = np.array([0, 1, 2, 2])
    impostor = ranked([[1.8], [2.2], [5.0], [-2.0]], 1)  # best distances .8 .8 1.8 2.0
    c = calibrate_open_set(genuine, truth, impostor, SPEC, [0.25, 0.5])
    # 1 of 4 impostors may pass at FAR .25, but the two at .8 tie: none may -> below .8
    assert c["0.25"]["threshold"] < 0.8 and c["0.25"]["far"] == 0.0 and c["0.25"]["dir"] == 1.0
    # 2 of 4 at FAR .5: just below 1.8, letting both .8 through
    assert 0.8 < c["0.5"]["threshold"] < 1.8 and c["0.5"]["far"] == 0.5
    assert calibration_threshold(c, 0.5, "g") == c["0.5"]["threshold"]
    with pytest.raises(UserError, match="no threshold for it .calibrated: 0.25, 0.5"):
        calibration_threshold(c, 0.1, "g")
    with pytest.raises(UserError, match="AND of identities not in the gallery"):
        calibrate_open_set(genuine, truth, ranked(np.zeros((0, 1)), 1), SPEC, [0.1])
