"""Nearest neighbour on raw pixels over fixed episodes: the floor any learned model must beat.

    python scripts/pixel_baseline.py data/omniglot/runs [--size 32] [--size 105]

Each image is decoded grayscale and resized as a model would see it; a query takes the class of
the support image at the smallest Euclidean distance between pixel vectors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from siamese.data.images import load_images  # noqa: E402
from siamese.eval.episodes import read_episodes, score_episodes  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("episode_file", type=Path)
    p.add_argument("--size", type=int, action="append", help="image side (repeatable)")
    args = p.parse_args(argv)
    episodes, root = read_episodes(args.episode_file)
    paths = sorted({x for ep in episodes for x in ep.support + ep.query})
    out = {}
    for size in args.size or [32]:
        x = load_images([root / q for q in paths], (size, size), 1).reshape(len(paths), -1)
        x = x.astype(np.float32) / 255.0
        r = score_episodes(episodes, {q: k for k, q in enumerate(paths)},
                           lambda a, b, x=x: np.sqrt(((x[a] - x[b]) ** 2).sum(axis=1)), False)
        out[size] = {k: r[k] for k in ("mean_accuracy", "error_rate", "ci95", "queries")}
        print(f"{size}x{size}: accuracy {r['mean_accuracy']:.4f} (95% CI {r['ci95'][0]:.4f}-"
              f"{r['ci95'][1]:.4f}, {r['queries']} queries)")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
