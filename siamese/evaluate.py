"""Embed images with a branch (static batch shapes) and score pair rows."""

from __future__ import annotations

from collections.abc import Sequence

import mxnet as mx
import numpy as np

from .images import to_tensor
from .metrics import far_threshold, verification


def embed(block, images: np.ndarray, mean: Sequence[float], std: Sequence[float],
          batch_size: int, ctx: mx.Context, progress: bool = False) -> np.ndarray:
    """Embeddings (N, E) float32 of uint8 images (N, H, W, C), in inference mode.

    Every batch has `batch_size` images (the last is padded by repeating its final image), so
    a hybridized block with static shapes never re-plans, and results do not depend on N.
    """
    n = len(images)
    batches = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="embed", unit="batch", leave=False, disable=None)
    out = []
    for start in batches:
        chunk = images[start:start + batch_size]
        real = len(chunk)
        if real < batch_size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - real, 0)])
        x = mx.nd.array(to_tensor(chunk, mean, std), ctx=ctx)
        out.append(block(x).asnumpy()[:real])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def choose_threshold(scores: np.ndarray, labels: np.ndarray, spec: dict, rule: str) -> dict:
    """{"threshold", "threshold_rule"} chosen on these (validation) pairs by an
    `eval.threshold` rule: `accuracy` (most pairs right) or `far:X` (false accept rate <= X,
    the most true accepts)."""
    from .config import parse_threshold_rule

    kind, far = parse_threshold_rule(rule)
    if kind == "far":
        t = far_threshold(scores, labels, spec["higher_is_similar"], far)["threshold"]
    else:
        t = verification(scores, labels, spec["higher_is_similar"])["threshold"]
    return {"threshold": float(t), "threshold_rule": rule}


def pair_metrics(scores: np.ndarray, labels: np.ndarray, spec: dict, threshold=None) -> dict:
    """verification() with the spec's direction; threshold None = choose on these pairs."""
    return verification(scores, labels, spec["higher_is_similar"], threshold)



def score_pair_list(comparator, pairs, root, size, channels: int,
                    progress: bool = False) -> tuple:
    """Scores of a PairList (siamese.pairfiles) whose paths are relative to `root`, with a
    siamese.comparator.Comparator. Each unique image is decoded once (and, for embedding
    models, embedded once per side). Returns (scores (n,), unique images)."""
    from pathlib import Path

    from .images import load_images

    names = sorted(set(pairs.left) | set(pairs.right))
    images = load_images([Path(root) / n for n in names], size, channels, progress)
    index = {n: k for k, n in enumerate(names)}
    scores = comparator.score(images, [index[p] for p in pairs.left],
                              [index[p] for p in pairs.right], progress)
    return scores, len(names)
