"""Embed images with a branch (static batch shapes) and score pair rows."""

from __future__ import annotations

from collections.abc import Sequence

import mxnet as mx
import numpy as np

from .images import to_tensor
from .metrics import verification
from .scoring import score_pairs


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


def score_rows(block, images: np.ndarray, rows: np.ndarray, spec: dict, mean, std,
               batch_size: int, ctx: mx.Context, progress: bool = False) -> np.ndarray:
    """Scores (n,) of pair rows (i, j[, label]) indexing `images`; each image embedded once."""
    uniq, inverse = np.unique(rows[:, :2], return_inverse=True)
    emb = embed(block, images[uniq], mean, std, batch_size, ctx, progress)
    inverse = inverse.reshape(-1, 2)
    return score_pairs(spec, emb[inverse[:, 0]], emb[inverse[:, 1]])


def pair_metrics(scores: np.ndarray, labels: np.ndarray, spec: dict, threshold=None) -> dict:
    """verification() with the spec's direction; threshold None = choose on these pairs."""
    return verification(scores, labels, spec["higher_is_similar"], threshold)


def evaluate_export(export_dir, pairs_csv, root, batch_size: int = 256,
                    ctx: mx.Context = mx.cpu(), progress: bool = False) -> dict:
    """Score a `left,right,label` pair list with an exported model and its stored threshold.

    Args:
        export_dir: folder with branch-symbol.json, branch-0000.params, model.json.
        pairs_csv: the pair list; paths relative to `root`.
        root: the image folder the paths refer to.
    Returns:
        {"auc", "eer", "accuracy", "threshold", "n_pairs", "n_images"}.
    """
    from pathlib import Path

    from .errors import UserError
    from .export import load_branch, read_meta
    from .images import load_images
    from .pairs import read_pairs_csv

    export_dir, root = Path(export_dir), Path(root)
    meta = read_meta(export_dir)
    left, right, labels = read_pairs_csv(Path(pairs_csv))
    names = sorted(set(left) | set(right))
    for n, (a, b) in enumerate(zip(left, right), start=2):
        for p in (a, b):
            if not (root / p).is_file():
                raise UserError(f"{pairs_csv}: line {n}: no such image {root / p}")
    pre = meta["preprocess"]
    channels = {"L": 1, "RGB": 3}[pre["color"]]
    images = load_images([root / p for p in names], pre["resize"], channels, progress)
    index = {p: k for k, p in enumerate(names)}
    rows = np.array([[index[a], index[b]] for a, b in zip(left, right)], np.int64)
    block = load_branch(export_dir, ctx)
    spec = meta["score"]
    scores = score_rows(block, images, rows, spec, pre["mean"], pre["std"], batch_size, ctx,
                        progress)
    out = pair_metrics(scores, labels, spec, spec["threshold"])
    out["n_images"] = len(names)
    return out
