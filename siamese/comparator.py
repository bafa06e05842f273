"""Score pairs of decoded images with any architecture: the one scoring path of training-time
validation, eval.py, n-way episodes and predict.

Three kinds of model compare two images:
- `branch` (siamese): one network embeds both sides; each image is embedded once and pairs are
  scored from the embeddings (`siamese.scoring`).
- `two_branches` (pseudo-siamese): the left network embeds left images, the right network right
  images; each image is embedded once per side it appears on.
- `pair_scorer` (two-channel): one network takes both images and outputs a score; every pair is
  run through it (there are no embeddings to cache).

`right_view` (data.right_view) is applied to every right-side image before preprocessing.
"""

from __future__ import annotations

from typing import Callable, Dict

import mxnet as mx
import numpy as np

from .errors import UserError
from .evaluate import embed
from .images import to_tensor
from .scoring import score_pairs

KINDS = ("branch", "two_branches", "pair_scorer")
ARCHITECTURE_KIND = {"siamese": "branch", "pseudo_siamese": "two_branches",
                     "two_channel": "pair_scorer"}


def invert(images: np.ndarray) -> np.ndarray:
    """255 - pixel, uint8 (N, H, W, C)."""
    return 255 - images


def blur(images: np.ndarray) -> np.ndarray:
    """Binomial blur, kernel [1, 4, 6, 4, 1] / 16 along H then W, edges repeated; uint8 out
    (rounded half up). Deterministic, so a second domain can be rebuilt anywhere."""
    k = np.array([1, 4, 6, 4, 1], np.float64) / 16.0
    x = images.astype(np.float64)
    pad = np.pad(x, ((0, 0), (2, 2), (0, 0), (0, 0)), mode="edge")
    x = sum(k[i] * pad[:, i:i + x.shape[1]] for i in range(5))
    pad = np.pad(x, ((0, 0), (0, 0), (2, 2), (0, 0)), mode="edge")
    x = sum(k[i] * pad[:, :, i:i + x.shape[2]] for i in range(5))
    return np.floor(x + 0.5).clip(0, 255).astype(np.uint8)


VIEWS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda images: images, "invert": invert, "blur": blur,
}


def get_view(name: str) -> Callable[[np.ndarray], np.ndarray]:
    if name not in VIEWS:
        raise UserError(f"data.right_view: unknown {name!r} (valid: {', '.join(VIEWS)})")
    return VIEWS[name]


class Comparator:
    """Scores (i, j) pairs of a uint8 image array (N, H, W, C): image i on the left.

    Args:
        kind: "branch", "two_branches" or "pair_scorer".
        blocks: {"branch"}, {"left", "right"} or {"scorer"}: callables on NDArrays. A scorer
            takes (left, right) batches (B, C, H, W) and returns (B,) scores.
        spec: the score spec (name, higher_is_similar[, weights, bias, threshold]).
        mean, std: preprocessing after scaling to [0, 1].
        batch_size: images (or pairs) per batch; every batch has this size (the last padded).
        right_view: name in VIEWS applied to right-side images.
    """

    def __init__(self, kind: str, blocks: dict, spec: dict, mean, std, batch_size: int,
                 ctx: mx.Context, right_view: str = "none"):
        if kind not in KINDS:
            raise UserError(f"unknown model kind {kind!r} (valid: {', '.join(KINDS)})")
        self.kind, self.blocks, self.spec = kind, blocks, spec
        self.mean, self.std, self.batch_size, self.ctx = mean, std, batch_size, ctx
        self.right_view = right_view
        self.view = get_view(right_view)

    @property
    def embeds(self) -> bool:
        """True when images are embedded once and pairs scored from embeddings."""
        return self.kind != "pair_scorer"

    def embed_side(self, images: np.ndarray, side: str, progress: bool = False) -> np.ndarray:
        """Embeddings (N, E) of images shown on `side` ("left" or "right")."""
        if not self.embeds:
            raise UserError("a two-channel pair scorer has no embeddings; it scores pairs")
        block = self.blocks["branch"] if self.kind == "branch" else self.blocks[side]
        if side == "right":
            images = self.view(images)
        return embed(block, images, self.mean, self.std, self.batch_size, self.ctx, progress)

    def score(self, images: np.ndarray, left: np.ndarray, right: np.ndarray,
              progress: bool = False) -> np.ndarray:
        """Scores (n,) of the pairs (images[left[k]], images[right[k]])."""
        left, right = np.asarray(left, np.int64), np.asarray(right, np.int64)
        if not self.embeds:
            return self._score_pairs(images, left, right, progress)
        if self.kind == "branch" and self.right_view == "none":
            uniq, inverse = np.unique(np.concatenate([left, right]), return_inverse=True)
            emb = self.embed_side(images[uniq], "left", progress)
            return score_pairs(self.spec, emb[inverse[:len(left)]], emb[inverse[len(left):]])
        ul, il = np.unique(left, return_inverse=True)
        ur, ir = np.unique(right, return_inverse=True)
        el = self.embed_side(images[ul], "left", progress)
        er = self.embed_side(images[ur], "right", progress)
        return score_pairs(self.spec, el[il], er[ir])

    def _score_pairs(self, images, left, right, progress: bool) -> np.ndarray:
        n, b = len(left), self.batch_size
        starts = range(0, n, b)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="score pairs", unit="batch", leave=False, disable=None)
        out = []
        for s in starts:
            li, ri = left[s:s + b], right[s:s + b]
            real = len(li)
            if real < b:  # static shapes: pad with the last pair
                li = np.concatenate([li, np.repeat(li[-1:], b - real)])
                ri = np.concatenate([ri, np.repeat(ri[-1:], b - real)])
            x1 = mx.nd.array(to_tensor(images[li], self.mean, self.std), ctx=self.ctx)
            x2 = mx.nd.array(to_tensor(self.view(images[ri]), self.mean, self.std),
                             ctx=self.ctx)
            out.append(self.blocks["scorer"](x1, x2).asnumpy().reshape(-1)[:real])
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def training_comparator(net, spec: dict, mean, std, batch_size: int, ctx: mx.Context,
                        right_view: str = "none") -> Comparator:
    """A Comparator over a network being trained (SiameseNet, PseudoSiameseNet or
    TwoChannelNet, see siamese.model); the two-channel logit becomes a probability."""
    kind = getattr(net, "kind", "branch")
    if kind == "branch":
        blocks: Dict[str, object] = {"branch": net.branch}
    elif kind == "two_branches":
        blocks = {"left": net.left, "right": net.right}
    else:
        blocks = {"scorer": lambda a, b: mx.nd.sigmoid(net(a, b))}
    return Comparator(kind, blocks, spec, mean, std, batch_size, ctx, right_view)
