"""Nearest-neighbour search: the exact numpy index against brute force, FAISS indexes against
the exact one, and the scores they return equal to the scoring path of predict."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import extra

from siamese.errors import UserError
from siamese.identification.search import CHUNK, build_index, search, similarity
from siamese.scoring.scores import score_pairs

EUCLID = {"name": "euclidean", "higher_is_similar": False, "threshold": 1.0}
COSINE = {"name": "cosine", "higher_is_similar": False, "threshold": 0.5}
LOGISTIC = {"name": "logistic", "higher_is_similar": True, "threshold": 0.5,
            "weights": [0.5, -1.0, 2.0, 0.1], "bias": 0.3}


def brute(spec, queries, gallery, k):
    """The k best gallery rows by scoring every pair with score_pairs."""
    out = []
    for q in queries:
        s = similarity(spec, score_pairs(spec, np.repeat(q[None], len(gallery), 0), gallery))
        out.append(np.argsort(-s, kind="stable")[:k])
    return np.array(out)


@pytest.mark.parametrize("spec", [EUCLID, COSINE, LOGISTIC], ids=lambda s: s["name"])
def test_exact_search_finds_what_scoring_every_pair_finds(spec):
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(300, 4)).astype(np.float32)
    queries = rng.normal(size=(7, 4)).astype(np.float32)
    sim, ids = search(build_index(gallery, spec, "exact"), gallery, spec, queries, 5)
    np.testing.assert_array_equal(ids, brute(spec, queries, gallery, 5))
    want = score_pairs(spec, np.repeat(queries, 5, 0), gallery[ids.reshape(-1)])
    np.testing.assert_array_equal(sim.reshape(-1), similarity(spec, want))
    assert np.all(np.diff(sim, axis=1) <= 0)


def test_exact_search_across_chunks(monkeypatch):
    monkeypatch.setattr("siamese.identification.search.BUDGET", 0)  # chunks of CHUNK rows
    rng = np.random.default_rng(1)
    gallery = rng.normal(size=(CHUNK * 2 + 17, 8)).astype(np.float32)
    queries = gallery[[5, CHUNK + 3, 2 * CHUNK + 16]] + 1e-3
    _, ids = search(build_index(gallery, EUCLID, "exact"), gallery, EUCLID, queries, 3)
    assert ids[:, 0].tolist() == [5, CHUNK + 3, 2 * CHUNK + 16]


def test_asking_for_more_than_the_gallery_holds():
    g = np.eye(3, dtype=np.float32)
    sim, ids = search(build_index(g, EUCLID, "exact"), g, EUCLID, g[:1], 10)
    assert ids.shape == (1, 3) and ids[0, 0] == 0


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
@pytest.mark.parametrize("spec", [EUCLID, COSINE], ids=lambda s: s["name"])
def test_faiss_indexes_agree_with_exact_search(kind, spec):
    extra("faiss")
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(40, 16)).astype(np.float32)
    gallery = (np.repeat(centres, 50, 0) + 0.05 * rng.normal(size=(2000, 16))).astype(np.float32)
    queries = (centres[rng.integers(0, 40, 50)] + 0.05 * rng.normal(size=(50, 16))).astype(
        np.float32)
    want_sim, want = search(build_index(gallery, spec, "exact"), gallery, spec, queries, 5)
    got_sim, got = search(build_index(gallery, spec, kind), gallery, spec, queries, 5)
    if kind == "flat":
        np.testing.assert_array_equal(got, want)
    else:  # approximate: the nearest one found for nearly every query, scored exactly
        assert (got[:, 0] == want[:, 0]).mean() >= 0.95
    same = got[:, 0] == want[:, 0]
    np.testing.assert_array_equal(got_sim[same, 0], want_sim[same, 0])


def test_an_unknown_index_or_a_score_faiss_cannot_search_is_refused():
    g = np.eye(4, dtype=np.float32)
    with pytest.raises(UserError, match="unknown 'annoy'"):
        build_index(g, EUCLID, "annoy")
    extra("faiss")
    with pytest.raises(UserError, match="no metric for score 'logistic'"):
        build_index(g, LOGISTIC, "hnsw")
