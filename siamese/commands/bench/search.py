"""python -m siamese.gallery bench [--size 1000000] [--dim 128] [--quick] [--out FILE]

Gallery search speed on random unit vectors (the schema's default embedding size, 128): for
each index (numpy exact; FAISS flat, IVF, HNSW when installed) its build time, the memory it
adds (resident set growth), batch-1 query latency p50 / p99, throughput at batch 256, and for
the approximate ones recall@1 against exact search. Queries are gallery vectors with noise added
(each has a true nearest neighbour, as a probe of an enrolled identity does), never gallery rows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...identification.search import KINDS, faiss
from ..common import run

SPEC = {"name": "cosine", "higher_is_similar": False, "threshold": 0.5}
LATENCY_QUERIES = 200


def rss_mb() -> float:
    """Current resident memory of this process, MB (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


def unit_vectors(n: int, dim: int, rng: np.random.Generator, chunk: int = 100_000):
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, chunk):
        x = rng.standard_normal((min(chunk, n - s), dim)).astype(np.float32)
        out[s:s + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def queries_near(gallery: np.ndarray, n: int, noise: float, rng: np.random.Generator):
    x = gallery[rng.choice(len(gallery), n, replace=False)] + \
        rng.standard_normal((n, gallery.shape[1])).astype(np.float32) * noise
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def measure(kind: str, gallery: np.ndarray, queries: np.ndarray, truth) -> dict:
    before = rss_mb()
    t = time.perf_counter()
    index = KINDS[kind](gallery, SPEC)
    build = time.perf_counter() - t
    grown = rss_mb() - before
    lat = []
    for q in queries[:LATENCY_QUERIES]:
        t = time.perf_counter()
        index.candidates(q[None], 1)
        lat.append(time.perf_counter() - t)
    t = time.perf_counter()
    found = np.concatenate([index.candidates(queries[s:s + 256], 1)[:, 0]
                            for s in range(0, len(queries), 256)])
    elapsed = time.perf_counter() - t
    row = {"index": kind, "build_seconds": round(build, 2), "memory_mb": round(grown, 1),
           "latency_ms_p50": round(1000 * float(np.percentile(lat, 50)), 3),
           "latency_ms_p99": round(1000 * float(np.percentile(lat, 99)), 3),
           "queries_per_second_batch256": round(len(queries) / elapsed, 1)}
    if truth is not None:  # against exact search
        row["recall_at_1"] = round(float((found == truth).mean()), 4)
    return row, found


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m siamese.gallery bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128, help="the schema's default embedding size")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--quick", action="store_true", help="100,000 vectors, fewer queries")
    p.add_argument("--indexes", default="exact,flat,ivf,hnsw", help="which to measure")
    p.add_argument("--out", type=Path, help="also write the figures as JSON")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """`python -m siamese.gallery bench ...` (argv: the options after `bench`)."""
    return run(lambda: measure_all(parse_args(argv)))


def measure_all(args: argparse.Namespace) -> int:
    size, n_queries = (100_000, 500) if args.quick else (args.size, args.queries)
    n_queries = min(n_queries, size)
    rng = np.random.default_rng(0)
    gallery = unit_vectors(size, args.dim, rng)
    queries = queries_near(gallery, n_queries, 0.5 / np.sqrt(args.dim), rng)
    print(f"gallery {size:,} x {args.dim} unit vectors ({gallery.nbytes / 2**20:.0f} MB), "
          f"{n_queries} queries near gallery vectors; faiss "
          f"{getattr(faiss, '__version__', 'not installed')}", flush=True)
    rows, truth = [], None
    asked = [k for k in args.indexes.split(",") if k]
    unknown = [k for k in asked if k not in KINDS]
    if unknown:
        raise UserError(f"--indexes: unknown {', '.join(unknown)} (valid: {', '.join(KINDS)})")
    if faiss is None:
        print("FAISS is not installed (pip install 'siamese[faiss]'): exact search only")
        asked = ["exact"]
    for kind in ["exact"] + [k for k in asked if k != "exact"]:
        row, found = measure(kind, gallery, queries, truth)
        if kind == "exact":
            truth = found
        if kind in asked:
            rows.append(row)
        print("  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"size": size, "dim": args.dim,
                                              "queries": n_queries, "rows": rows}, indent=2))
    return 0
