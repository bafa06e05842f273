"""Choose the query-time settings of the approximate indexes (HNSW efSearch, IVF nprobe) on a
tuning draw (seed 1), never on the benchmark's own draw (seed 0, python -m siamese.gallery bench).

    python scripts/tune_search.py [--size 1000000] [--dim 128]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from siamese.commands.bench.search import SPEC, queries_near, unit_vectors
from siamese.identification.search import FaissIndex


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    a = p.parse_args(argv)
    rng = np.random.default_rng(1)
    gallery = unit_vectors(a.size, a.dim, rng)
    queries = queries_near(gallery, 1000, 0.5 / np.sqrt(a.dim), rng)
    truth = FaissIndex(gallery, SPEC, "flat").candidates(queries, 1)[:, 0]
    for kind, knob, values in (("hnsw", "efSearch", (64, 128, 256, 512)),
                               ("ivf", "nprobe", (8, 16, 32, 64))):
        t = time.perf_counter()
        index = FaissIndex(gallery, SPEC, kind)
        print(f"{kind}: built in {time.perf_counter() - t:.1f} s", flush=True)
        for v in values:
            if kind == "hnsw":
                index.index.hnsw.efSearch = v
            else:
                index.index.nprobe = v
            t = time.perf_counter()
            found = index.candidates(queries, 1)[:, 0]
            qps = len(queries) / (time.perf_counter() - t)
            print(f"  {knob} {v}: recall@1 {(found == truth).mean():.4f}, {qps:.0f} queries/s "
                  f"(batch 1000)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
