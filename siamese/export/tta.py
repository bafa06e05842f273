"""Test-time averaging inside the exported graph (`siamese export RUN_DIR --tta K`): the branch
symbol itself embeds each image and its four copies shifted by K pixels, averages the five
embeddings and, when the model's embeddings are unit vectors, puts the mean back on the unit
sphere. The same averaging as `eval.py --tta K` (siamese.eval.tta), for every consumer of the
export (predict, gallery, eval.py, the HTTP service) with no code of its own: the symbol keeps
one input `data` (B, C, H, W) and one output (B, E)."""

from __future__ import annotations

from mxnet.gluon import HybridBlock

from ..models.architectures import SiameseNet
from ..models.norm import l2_normalize

COPIES = 5  # the image and its four shifted copies


def shifted_copies(F, x, k: int):
    """(5B, C, H, W): the batch x (B, C, H, W), then its copies moved by k pixels down, up,
    right and left (siamese.eval.tta.shifted's order), the edge rows and columns repeated."""
    # x is already (pixel / 255 - mean) / std: repeating edge pixels commutes with that
    # per-pixel affine map, so these are the normalised shifted uint8 images
    pad = F.pad(x, mode="edge", pad_width=(0, 0, 0, 0, k, k, k, k))  # (B, C, H+2k, W+2k)
    top = F.slice_axis(pad, axis=2, begin=0, end=-2 * k)  # rows shown one shift lower
    mid = F.slice_axis(pad, axis=2, begin=k, end=-k)
    low = F.slice_axis(pad, axis=2, begin=2 * k, end=None)  # rows shown one shift higher
    down = F.slice_axis(top, axis=3, begin=k, end=-k)
    up = F.slice_axis(low, axis=3, begin=k, end=-k)
    right = F.slice_axis(mid, axis=3, begin=0, end=-2 * k)
    left = F.slice_axis(mid, axis=3, begin=2 * k, end=None)
    return F.concat(x, down, up, right, left, dim=0)


class ShiftAveraged(HybridBlock):
    """A branch whose embedding is the mean over the input and its four copies shifted by `k`
    pixels (down, up, right, left; the edge rows and columns repeated), in the order and
    directions of siamese.eval.tta.shifted.

    The copies are made from the normalised input x = (pixel / 255 - mean) / std: repeating an
    edge pixel commutes with any per-pixel affine map, so shifting here is the same as shifting
    the uint8 image before preprocessing.

    Args:
        branch: the trained branch, (B, C, H, W) -> (B, E).
        k: the shift in pixels (>= 1).
        normalized: the branch's embeddings are unit vectors (model.json `normalized`): the
            mean is L2-normalised again.
    """

    def __init__(self, branch: HybridBlock, k: int, normalized: bool, **kwargs):
        super().__init__(prefix="", **kwargs)  # the branch's parameter names are kept
        self.k, self.normalized = int(k), bool(normalized)
        self.branch = branch

    def hybrid_forward(self, F, x):
        emb = self.branch(shifted_copies(F, x, self.k))  # (5B, E)
        # split + add_n rather than a reshape to (5, B, E): mx2onnx has no reshape code -4
        mean = F.add_n(*F.split(emb, num_outputs=COPIES, axis=0)) / COPIES  # (B, E)
        if self.normalized:
            mean = l2_normalize(F, mean)  # plain operators, as the branch's
        return mean


def averaging_net(net, k: int, normalized: bool) -> SiameseNet:
    """A siamese network whose one branch is `net`'s branch averaged over shifts of `k`
    pixels, hybridized as training's networks are; it shares `net`'s parameters."""
    wrapped = SiameseNet(ShiftAveraged(net.branch, k, normalized), net.forward_mode)
    wrapped.hybridize(static_alloc=True, static_shape=True)
    return wrapped
