"""Score pairs of decoded images with any architecture: the one scoring path of training-time
validation, eval.py, n-way episodes, predict and enrolment (siamese.scoring.bundles opens an
export to score with).

How an architecture compares two images is its own (siamese.models.architectures):
- it embeds (siamese, pseudo-siamese): each image is embedded once per side it appears on
  (once in all when both sides share the network) and pairs are scored from the embeddings
  (siamese.scoring.scores);
- it scores pairs (two-channel): every pair runs through the network (no embeddings).

`right_view` (data.right_view) is applied to every right-side image before preprocessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import mxnet as mx
import numpy as np

from ..data.storage import load_files
from ..data.views import get_view
from ..errors import UserError
from ..formats.preprocess import pad_batch, to_tensor
from ..models.architectures import Architecture, architecture_of
from .scores import score_pairs


def _batches(n: int, size: int, what: str, progress: bool):
    starts = range(0, n, size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=what, unit="batch", leave=False, disable=None)
    return starts


def embed(block, images: np.ndarray, mean: Sequence[float], std: Sequence[float],
          batch_size: int, ctx: mx.Context, progress: bool = False) -> np.ndarray:
    """Embeddings (N, E) float32 of uint8 images (N, H, W, C), in inference mode.

    Every batch has `batch_size` images (the last is padded by repeating its final image), so
    a hybridized block with static shapes never re-plans, and results do not depend on N.
    """
    out = []
    for start in _batches(len(images), batch_size, "embed", progress):
        chunk = images[start:start + batch_size]
        x = mx.nd.array(to_tensor(pad_batch(chunk, batch_size), mean, std), ctx=ctx)
        out.append(block(x).asnumpy()[:len(chunk)])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class Comparator:
    """Scores (i, j) pairs of a uint8 image array (N, H, W, C): image i on the left.

    Args:
        arch: the Architecture (how its networks compare two images).
        blocks: {role: callable on NDArrays}: the architecture's roles. A pair scorer takes
            (left, right) batches (B, C, H, W) and returns (B,) scores.
        spec: the score spec (name, higher_is_similar[, weights, bias, threshold]).
        mean, std: preprocessing after scaling to [0, 1].
        batch_size: images (or pairs) per batch; every batch has this size (the last padded).
        right_view: name in siamese.data.views.VIEWS applied to right-side images.
    """

    def __init__(self, arch: Architecture, blocks: dict, spec: dict, mean, std,
                 batch_size: int, ctx: mx.Context, right_view: str = "none"):
        self.arch, self.blocks, self.spec = arch, blocks, spec
        self.mean, self.std, self.batch_size, self.ctx = mean, std, batch_size, ctx
        self.right_view = right_view
        self.view = get_view(right_view)

    @property
    def kind(self) -> str:
        return self.arch.kind

    @property
    def embeds(self) -> bool:
        """True when images are embedded once and pairs scored from embeddings."""
        return self.arch.embeds

    @property
    def same_embedding(self) -> bool:
        """True when an image's left and right embeddings are one (one network, no view)."""
        return self.arch.shares_sides and self.right_view == "none"

    def embed_side(self, images: np.ndarray, side: str, progress: bool = False) -> np.ndarray:
        """Embeddings (N, E) of images shown on `side` ("left" or "right")."""
        if not self.embeds:
            raise UserError("a two-channel pair scorer has no embeddings; it scores pairs")
        block = self.blocks[self.arch.side_role(side)]
        if side == "right":
            images = self.view(images)
        return embed(block, images, self.mean, self.std, self.batch_size, self.ctx, progress)

    def score(self, images: np.ndarray, left: np.ndarray, right: np.ndarray,
              progress: bool = False) -> np.ndarray:
        """Scores (n,) of the pairs (images[left[k]], images[right[k]])."""
        left, right = np.asarray(left, np.int64), np.asarray(right, np.int64)
        if not self.embeds:
            return self._score_pairs(images, left, right, progress)
        if self.same_embedding:
            uniq, inverse = np.unique(np.concatenate([left, right]), return_inverse=True)
            emb = self.embed_side(images[uniq], "left", progress)
            return score_pairs(self.spec, emb[inverse[:len(left)]], emb[inverse[len(left):]])
        ul, il = np.unique(left, return_inverse=True)
        ur, ir = np.unique(right, return_inverse=True)
        el = self.embed_side(images[ul], "left", progress)
        er = self.embed_side(images[ur], "right", progress)
        return score_pairs(self.spec, el[il], er[ir])

    def _score_pairs(self, images, left, right, progress: bool) -> np.ndarray:
        b, scorer = self.batch_size, self.blocks[self.arch.roles[0]]
        out = []
        for s in _batches(len(left), b, "score pairs", progress):
            real = len(left[s:s + b])
            li, ri = pad_batch(left[s:s + b], b), pad_batch(right[s:s + b], b)  # static shapes
            x1 = mx.nd.array(to_tensor(images[li], self.mean, self.std), ctx=self.ctx)
            x2 = mx.nd.array(to_tensor(self.view(images[ri]), self.mean, self.std),
                             ctx=self.ctx)
            out.append(scorer(x1, x2).asnumpy().reshape(-1)[:real])
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def training_comparator(net, spec: dict, mean, std, batch_size: int, ctx: mx.Context,
                        right_view: str = "none") -> Comparator:
    """A Comparator over a network being trained (any architecture); it scores as the export
    will (a two-channel logit becomes a probability)."""
    arch = architecture_of(net)
    return Comparator(arch, arch.blocks(net), spec, mean, std, batch_size, ctx, right_view)


def score_pair_list(comparator: Comparator, pairs, root, size, channels: int,
                    progress: bool = False, cache_dir: str = "auto") -> tuple:
    """Scores of a PairList (siamese.data.pairfiles) whose paths are relative to `root`. Each
    unique image is decoded once, or mapped from the folder's decoded cache (and, for
    embedding models, embedded once per side).
    Returns (scores (n,), the unique image paths, their decoded images)."""
    names = sorted(set(pairs.left) | set(pairs.right))
    images = load_files(Path(root), names, size, channels, progress, cache_dir)
    index = {n: k for k, n in enumerate(names)}
    scores = comparator.score(images, [index[p] for p in pairs.left],
                              [index[p] for p in pairs.right], progress)
    return scores, names, images
