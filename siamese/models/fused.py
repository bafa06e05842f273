"""Faster operators for the training graph on CPUs, with the same maths, and the switch between
them and the plain operators that exports hold.

On a CPU with oneDNN the training step of the `convnet` branch spends a fifth of its time
outside the convolutions in two places (MXNet's profiler, 32x32 and 105x105 inputs): ReLU as an
operator of its own (its backward alone ~10% of the step), and the mean over H and W, which
MXNet reduces with a slow generic kernel after reordering the map out of oneDNN's blocked
layout. Fused, BatchNorm and ReLU run as one oneDNN operator (`_contrib_BatchNormWithReLU`),
and the mean as a global average pooling (GlobalMean). Both exist on CPU only (BatchNormWithReLU has
no GPU kernel), and the oneDNN subgraph and ONNX exporters know only the plain operators: the
graph switches per use, and its parameters never change.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, List

import mxnet as mx
from mxnet.gluon import HybridBlock, nn


class BatchNormReLU(nn.BatchNorm):
    """BatchNorm followed by ReLU: one oneDNN operator with `fuse_relu` (MXNet's own switch of
    its BatchNorm layers), BatchNorm then Activation without. Same parameters either way.

    Fused, the gradients are right in training mode (batch or, frozen, global statistics),
    but not when taken in predict mode (MXNet 1.9.1); nothing here takes those."""

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        y = super().hybrid_forward(F, x, gamma, beta, running_mean, running_var)
        return y if self.fuse_relu else F.Activation(y, act_type="relu")


class Identity(HybridBlock):
    """Returns its input. Holds the place of the ReLU layer that BatchNormReLU absorbed, so
    structural parameter names (`features.4.weight`) and model.share/freeze prefixes of
    earlier runs keep their meaning."""

    def hybrid_forward(self, F, x):
        return x


class GlobalMean(HybridBlock):
    """Mean over H and W: (B, C, H, W) -> (B, C) with `F.mean`, or (B, C, 1, 1) fused (the
    Dense layer after it flattens either).

    Fused, maps of at most POOL_MAX_SIDE a side (as seen by the imperative call that fixes the
    shapes before hybridizing) take global average Pooling, others AdaptiveAvgPooling2D:
    oneDNN's pooling backward runs its JIT kernel up to 8x8 and falls back to reference kernels
    from 9x9 (forward + backward in a probe: 17.8 against 19.5 ms at 8x8, 150 against 18 ms at
    9x9, 400 against 50 ms at 26x26; docs/mxnet.md, "BatchNorm and the fused operators")."""

    POOL_MAX_SIDE = 8

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fused = False
        self.map_side = 0  # largest side of the last map called imperatively; 0: not seen

    def forward(self, x, *args):
        if isinstance(x, mx.nd.NDArray):
            self.map_side = max(x.shape[2:])
        return super().forward(x, *args)

    def hybrid_forward(self, F, x):
        if not self.fused:
            return F.mean(x, axis=(2, 3))
        if 0 < self.map_side <= self.POOL_MAX_SIDE:
            return F.Pooling(x, global_pool=True, pool_type="avg", kernel=(1, 1))
        return F.contrib.AdaptiveAvgPooling2D(x, output_size=1)


def _fusable(block: HybridBlock) -> List[HybridBlock]:
    out = []
    block.apply(lambda b: out.append(b) if isinstance(b, (BatchNormReLU, GlobalMean)) else None)
    return out


def is_fused(block: HybridBlock) -> bool:
    """Whether any layer of the block runs its fused operator."""
    return any(getattr(b, "fuse_relu", False) or getattr(b, "fused", False)
               for b in _fusable(block))


def set_fused(block: HybridBlock, on: bool) -> int:
    """Switch every fusable layer of the block; returns how many. Cached graphs are dropped,
    so the next call of a hybridized block traces the graph anew."""
    layers = _fusable(block)
    for b in layers:
        if isinstance(b, BatchNormReLU):
            b.fuse_relu = on
        else:
            b.fused = on
    block.apply(lambda b: b._clear_cached_op() if isinstance(b, HybridBlock) else None)
    return len(layers)


@contextlib.contextmanager
def plain_graph(block: HybridBlock) -> Iterator[HybridBlock]:
    """The block with plain operators inside the `with` (an export's graph), restored after."""
    was = is_fused(block)
    if was:
        set_fused(block, False)
    try:
        yield block
    finally:
        if was:
            set_fused(block, True)


def fused_available(ctxs: List[mx.Context]) -> bool:
    """The fused operators run here: every device a CPU, and MXNet built with oneDNN."""
    return all(c.device_type == "cpu" for c in ctxs) and \
        mx.runtime.Features().is_enabled("MKLDNN")
