"""Test-time symmetries inside the exported graph (`export.symmetries`, `siamese export RUN_DIR
--symmetries NAME`): the branch symbol embeds each image in several symmetries of itself (the
quarter turns and mirror images of siamese.data.turns) and returns their embeddings side by
side, divided by sqrt(V) for V symmetries. The squared euclidean distance of two such
embeddings is then the mean over the symmetries of the squared distances of the plain
embeddings (and a cosine, the mean of the cosines of unit embeddings): an ensemble of views
that costs V times the inference and nothing in training. The same as `eval.py --symmetries
NAME` over a plain export (siamese.eval.tta), for every consumer of the export with no code of
its own: the symbol keeps one input `data` (B, C, H, W) and one output (B, V x E).

Why it is worth V times the inference, measured on Omniglot (docs/omniglot.md, fourth round):
networks trained with rotation classes tell a turned character from the others, so each turn is
a different view of the same pair, and the 8 symmetries gained 1.7-3.1 points of 20-way
accuracy on validation alphabets.
"""

from __future__ import annotations

import math

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock

from ..data.turns import symmetry_turns
from ..models.architectures import SiameseNet


def reverser(width: int) -> np.ndarray:
    """(W, W) float32: x (..., W) . J reverses the last axis (J[i, W - 1 - i] = 1)."""
    return np.eye(width, dtype=np.float32)[::-1].copy()


def turn(F, x, t: int, reverse):
    """The batch x (B, C, H, W) under turn t of siamese.data.turns (mirrored left to right
    first when t >= 4, then t % 4 quarter turns anticlockwise). `reverse` is reverser(W):
    columns are reversed by a product with it, not with `flip`, whose ONNX conversion in
    MXNet 1.9.1 gives a graph onnxruntime cannot run (docs/mxnet.md, "Parameters, sharing and
    export"); the product is exact."""
    if t >= 4:
        x = F.dot(x, reverse)
    for _ in range(t % 4):  # numpy's rot90 over (H, W): reverse the columns, then transpose
        x = F.transpose(F.dot(x, reverse), axes=(0, 1, 3, 2))
    return x


class Symmetric(HybridBlock):
    """A branch whose embedding is the concatenation of its embeddings of the input under each
    turn of `name` (siamese.data.turns.SYMMETRIES), divided by sqrt(V).

    Args:
        branch: the trained branch, (B, C, H, W) -> (B, E).
        name: a SYMMETRIES name other than none.
        width: W of the input (square for quarter turns): the size of the constant that
            reverses columns (exported with the parameters as `symmetries_reverse`).
    """

    def __init__(self, branch: HybridBlock, name: str, width: int, **kwargs):
        super().__init__(prefix="", **kwargs)  # the branch's parameter names are kept
        self.turns = symmetry_turns(name, "export.symmetries")
        self.branch = branch
        self.reverse = self.params.get_constant("symmetries_reverse",
                                                mx.nd.array(reverser(int(width))))

    def hybrid_forward(self, F, x, reverse):
        v = len(self.turns)
        turned = [turn(F, x, t, reverse) for t in self.turns]
        emb = self.branch(F.concat(*turned, dim=0))  # (VB, E)
        parts = F.split(emb, num_outputs=v, axis=0)
        return F.concat(*parts, dim=1) / math.sqrt(v)  # (B, V x E)


def symmetric_net(net, name: str, width: int, ctx=None) -> SiameseNet:
    """A siamese network whose one branch is `net`'s branch under the symmetries `name` (input
    width `width`), hybridized as training's networks are; it shares `net`'s parameters."""
    block = Symmetric(net.branch, name, width)
    block.reverse.initialize(ctx=ctx or net.branch.collect_params().list_ctx())
    wrapped = SiameseNet(block, net.forward_mode)
    wrapped.hybridize(static_alloc=True, static_shape=True)
    return wrapped
