"""Nearest-neighbour search over embeddings under an export's score: exact in numpy, or an index
of FAISS (`faiss-cpu`, the optional extra `faiss`): flat (exact), IVF or HNSW (approximate).

Every index answers `search(queries, k)` with similarities (higher = more alike: the score
itself, or minus a distance) and gallery row ids, best first. The k found are then re-scored
with siamese.scoring.scores, the one scoring path of evaluation and predict, so a reported score
is exactly what `python -m siamese.predict` says for that pair; the index only chooses them.
"""

from __future__ import annotations

import logging
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from ..errors import UserError
from ..scoring.scores import score_pairs

log = logging.getLogger(__name__)

logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # not "loading with AVX512" lines
try:  # optional: pip install 'siamese[faiss]'
    import faiss
except ImportError:  # pragma: no cover - depends on the machine
    faiss = None

EXACT_LIMIT = 50_000  # `auto` searches exactly up to this many gallery vectors, then IVF
CHUNK = 4096  # gallery rows scored at once by the exact search, at least
BUDGET = 1 << 24  # ... or as many as keep a chunk's (queries, rows) scores to 16M numbers


def similarity(spec: dict, scores: np.ndarray) -> np.ndarray:
    """Scores in model.json units -> similarities (higher = more alike)."""
    return scores if spec["higher_is_similar"] else -scores


def to_score(spec: dict, sim: np.ndarray) -> np.ndarray:
    """Similarities -> scores in model.json units (the inverse of `similarity`)."""
    return sim if spec["higher_is_similar"] else -sim


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pairwise_sim(spec: dict, q: np.ndarray, g: np.ndarray) -> np.ndarray:
    """(Q, G) similarities by scoring every (query, gallery row) pair: for scores with no
    matrix form (a logistic head); ExactIndex has the euclidean and cosine ones."""
    rows = np.repeat(np.arange(len(q)), len(g))
    return similarity(spec, score_pairs(spec, q[rows], np.tile(g, (len(q), 1)))).reshape(
        len(q), len(g))


def _top(sim: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """The k best columns of each row of sim, best first: (values, column ids)."""
    k = min(k, sim.shape[1])
    part = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k < sim.shape[1] else \
        np.tile(np.arange(sim.shape[1]), (len(sim), 1))
    vals = np.take_along_axis(sim, part, 1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(vals, order, 1), np.take_along_axis(part, order, 1)


class ExactIndex:
    """Every query scored against every gallery row, in chunks of CHUNK rows; no dependency.
    What does not depend on the query (unit rows, squared norms) is computed once."""

    kind = "exact"

    def __init__(self, vectors: np.ndarray, spec: dict):
        self.vectors, self.spec = np.asarray(vectors, np.float32), spec
        self.unit = _unit(self.vectors) if spec["name"] == "cosine" else None
        self.norms = (self.vectors ** 2).sum(1) if spec["name"] == "euclidean" else None

    def chunk_sim(self, queries: np.ndarray, s: int, e: int) -> np.ndarray:
        """(Q, e - s) similarities of the queries to gallery rows s .. e."""
        if self.unit is not None:
            return _unit(queries) @ self.unit[s:e].T - 1.0
        if self.norms is not None:
            d2 = (queries ** 2).sum(1)[:, None] + self.norms[None, s:e] - \
                2.0 * queries @ self.vectors[s:e].T
            return -np.sqrt(np.maximum(d2, 0.0))
        return pairwise_sim(self.spec, queries, self.vectors[s:e])

    def __len__(self) -> int:
        return len(self.vectors)

    def candidates(self, queries: np.ndarray, k: int) -> np.ndarray:
        best_v = np.zeros((len(queries), 0), np.float32)  # the running k best of each query
        best_i = np.zeros((len(queries), 0), np.int64)
        rows = max(CHUNK, BUDGET // max(1, len(queries)))
        for s in range(0, len(self.vectors), rows):
            v, i = _top(self.chunk_sim(queries, s, s + rows), k)
            v, i = np.concatenate([best_v, v], 1), np.concatenate([best_i, i + s], 1)
            best_v, pick = _top(v, k)
            best_i = np.take_along_axis(i, pick, 1)
        return best_i


class FaissIndex:
    """A FAISS index: `flat` (exact), `ivf` (inverted lists, nprobe searched) or `hnsw` (graph).

    Euclidean searches L2; cosine searches inner products of unit vectors. Other scores (a
    logistic head) have no FAISS metric: use the exact search.
    """

    # Query-time settings chosen on a tuning draw (scripts/tune_search.py, seed 1; 1,000,000
    # x 128): the first reaching recall@1 >= 0.95 against exact search.
    def __init__(self, vectors: np.ndarray, spec: dict, kind: str, nprobe: int = 32,
                 ef_search: int = 256, built=None):
        if faiss is None:
            raise UserError(f"--index {kind}: needs FAISS (pip install 'siamese[faiss]'); "
                            f"--index exact needs nothing")
        if spec["name"] not in ("euclidean", "cosine"):
            raise UserError(f"--index {kind}: FAISS has no metric for score {spec['name']!r}; "
                            f"use --index exact")
        self.kind, self.spec = kind, spec
        if built is not None:  # a stored index (siamese.formats.gallery), its settings restored
            self.index = built
            if kind == "hnsw":
                self.index.hnsw.efSearch = ef_search
            elif kind == "ivf":
                self.index.nprobe = min(nprobe, self.index.nlist)
            return
        x = self._prepare(vectors)
        n, dim = x.shape
        metric = faiss.METRIC_L2 if spec["name"] == "euclidean" else faiss.METRIC_INNER_PRODUCT
        if kind == "flat":
            self.index = faiss.IndexFlat(dim, metric)
        elif kind == "hnsw":
            self.index = faiss.IndexHNSWFlat(dim, 32, metric)
            self.index.hnsw.efSearch = ef_search
        else:
            nlist = int(max(1, min(4 * np.sqrt(n), n // 39)))  # FAISS wants >= 39 points a list
            self.index = faiss.IndexIVFFlat(faiss.IndexFlat(dim, metric), dim, nlist, metric)
            self.index.train(x[np.random.default_rng(0).permutation(n)[:256 * nlist]])
            self.index.nprobe = min(nprobe, nlist)
        self.index.add(x)

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        return np.ascontiguousarray(_unit(x), np.float32) if self.spec["name"] == "cosine" else x

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def candidates(self, queries: np.ndarray, k: int) -> np.ndarray:
        _, ids = self.index.search(self._prepare(queries), min(k, len(self)))
        return ids.astype(np.int64)


KINDS: Dict[str, Callable] = {
    "exact": lambda v, spec: ExactIndex(v, spec),
    "flat": lambda v, spec: FaissIndex(v, spec, "flat"),
    "ivf": lambda v, spec: FaissIndex(v, spec, "ivf"),
    "hnsw": lambda v, spec: FaissIndex(v, spec, "hnsw"),
}


def choose_kind(n: int, spec: dict) -> str:
    """What `auto` means for n gallery vectors: exact up to EXACT_LIMIT, IVF above when FAISS
    is installed (exact otherwise, with a warning): on the tuning draw it built faster than
    HNSW and answered 4.7x more queries a second at higher recall."""
    if n <= EXACT_LIMIT or spec["name"] not in ("euclidean", "cosine"):
        return "exact"
    if faiss is None:
        log.warning("%d gallery vectors: exact search (pip install 'siamese[faiss]' for an IVF "
                    "index)", n)
        return "exact"
    return "ivf"


def build_index(vectors: np.ndarray, spec: dict, kind: str = "auto"):
    """An index over gallery vectors (N, E); `auto` as `choose_kind` says."""
    if kind == "auto":
        kind = choose_kind(len(vectors), spec)
    if kind not in KINDS:
        raise UserError(f"--index: unknown {kind!r} (valid: auto, {', '.join(KINDS)})")
    return KINDS[kind](vectors, spec)


def serialize(index) -> Optional[np.ndarray]:
    """The bytes (uint8) of a FAISS index, to store; None for the exact search (nothing to)."""
    return None if index.kind == "exact" else np.asarray(faiss.serialize_index(index.index))


def restore(blob: np.ndarray, spec: dict, kind: str, where: str = "gallery") -> FaissIndex:
    """A stored FAISS index, ready to search; `where` (the gallery file) is named when its
    bytes do not read (FAISS raises RuntimeError: found by fuzzing)."""
    if faiss is None:
        raise UserError(f"{where}: stores a FAISS index: pip install 'siamese[faiss]', or "
                        "--index exact")
    try:
        built = faiss.deserialize_index(np.asarray(blob, np.uint8))
    except RuntimeError as e:
        last = str(e).strip().splitlines()[-1][-120:] if str(e).strip() else "RuntimeError"
        raise UserError(f"{where}: its stored FAISS index is damaged ({last}); build the "
                        f"gallery again") from None
    return FaissIndex(None, spec, kind, built=built)


def search(index, vectors: np.ndarray, spec: dict, queries: np.ndarray,
           k: int) -> Tuple[np.ndarray, np.ndarray]:
    """(similarities (Q, k), gallery ids (Q, k)) of the k best gallery rows per query, best
    first, re-scored exactly; ids are -1 (similarity -inf) where the index found fewer."""
    queries = np.asarray(queries, np.float32)
    ids = index.candidates(queries, k)
    valid = ids >= 0
    rows = np.repeat(np.arange(len(queries)), ids.shape[1])
    sim = similarity(spec, score_pairs(spec, queries[rows], vectors[np.maximum(ids, 0)].reshape(
        -1, vectors.shape[1]))).reshape(ids.shape).astype(np.float64)
    sim[~valid] = -np.inf
    order = np.argsort(-sim, axis=1, kind="stable")
    ids = np.where(valid, ids, -1)
    return np.take_along_axis(sim, order, 1), np.take_along_axis(ids, order, 1)
