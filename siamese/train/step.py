"""One training step: forward on every device, backward, a single check that the loss and the
gradients are finite, then the update. Built once per run, complete, and called with each batch.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from ..errors import TrainingError
from ..models.architectures import as_tuple
from ..models.decoder import reconstruction_loss


class NonFiniteStep(TrainingError):
    """The loss or a gradient of this batch is NaN or infinite; the step was not applied."""


def gradient_sums(trained: list, ctx: mx.Context, squares: bool) -> mx.nd.NDArray:
    """(1,): a sum over every gradient on `ctx`, non-finite when any element is. `squares`:
    the sums of squares in one operator (multi_sum_sq, ~4% of a 32x32 step less than one sum
    per array); squares overflow beyond ~1e19, so a non-finite verdict is checked again with
    `squares=False`."""
    g = [p.grad(ctx) for p in trained]
    if not g:
        return mx.nd.zeros((1,), ctx=ctx)
    if squares:
        return mx.nd.multi_sum_sq(*g, num_arrays=len(g)).sum()
    return mx.nd.add_n(*[a.sum() for a in g])


class TrainStep:
    """One step of a run, built once with everything it needs.

    Args:
        net: the network (any architecture); loss: its loss block (`n_inputs` embeddings).
        trainer: the gluon Trainer over the unique parameters.
        ctxs: the devices; each gets whole examples of every batch.
        examples: examples per step over all workers; `trainer.step` divides gradients by it,
            so `twice` and `concat` get the same learning rate.
        agree: (non-finite here) -> non-finite on any worker: the skip is a decision every
            worker of a distributed run takes together (none pushes gradients, none waits).
        autoencoder, recon_weight: with model.decoder, weight x the reconstruction loss of the
            images handed to each call is added.
    """

    squares = True  # the gradient check's first pass (see gradient_sums)

    def __init__(self, net, loss, trainer: gluon.Trainer, ctxs: list, examples: int,
                 agree: Optional[Callable[[bool], bool]] = None, autoencoder=None,
                 recon_weight: float = 0.0):
        self.net, self.loss, self.trainer, self.ctxs = net, loss, trainer, ctxs
        self.examples, self.agree = examples, agree or (lambda bad: bad)
        self.autoencoder, self.recon_weight = autoencoder, recon_weight
        self.trained = [p for p in trainer._params if p.grad_req != "null"]

    def losses(self, batch: tuple, images=None) -> tuple:
        """(per-device similarity losses, per-device weighted reconstruction losses), recorded.
        `batch` holds `loss.n_inputs` image arrays, then the targets; `images` (B, C, H, W)."""
        out = []
        if self.loss.n_inputs:
            shards = [gluon.utils.split_and_load(a, self.ctxs, even_split=False) for a in batch]
            k = self.loss.n_inputs
            out = [self.loss(*as_tuple(self.net(*arrays[:k])), *arrays[k:])
                   for arrays in zip(*shards)]
        rec = []
        if images is not None:
            rec = [self.recon_weight * reconstruction_loss(mx.nd, self.autoencoder(xs), xs)
                   for xs in gluon.utils.split_and_load(images, self.ctxs, even_split=False)]
        return out, rec

    def sums(self, losses: list, rec: list, squares: bool) -> np.ndarray:
        """[summed loss, summed reconstruction loss, a sum over every gradient], one sync."""
        zero = [mx.nd.zeros((1,), ctx=c) for c in self.ctxs]
        rows = [mx.nd.concat(v.sum().reshape((1,)), r.sum().reshape((1,)),
                             gradient_sums(self.trained, c, squares).reshape((1,)), dim=0)
                for v, r, c in zip(losses or zero, rec or zero, self.ctxs)]
        return np.sum([s.asnumpy() for s in rows], axis=0, dtype=np.float64)

    def __call__(self, batch: tuple, images=None, components: Optional[dict] = None) -> float:
        """Train on one batch (and reconstruction images); returns the summed loss.
        `components` receives the summed "similarity" and "reconstruction".

        Raises:
            NonFiniteStep: the loss or a gradient is not finite; the update was not applied
                (MXNet would apply NaN updates silently).
        """
        with autograd.record():
            losses, rec = self.losses(batch, images)
        autograd.backward(losses + rec)
        sim, rec_sum, grads = self.sums(losses, rec, self.squares)
        if self.squares and not math.isfinite(grads):
            grads = self.sums(losses, rec, False)[2]
        total = sim + rec_sum
        if components is not None:
            components["similarity"] = components.get("similarity", 0.0) + sim
            components["reconstruction"] = components.get("reconstruction", 0.0) + rec_sum
        local = not math.isfinite(total) or not math.isfinite(grads)
        if self.agree(local):
            raise NonFiniteStep(f"non-finite loss ({total})" if not math.isfinite(total) else
                                "non-finite gradient" if local else
                                "non-finite loss or gradient on another worker")
        self.trainer.step(self.examples)
        return float(total)


class AmpTrainStep(TrainStep):
    """The step under AMP (train.amp, GPU only): the loss is scaled for float16 gradients, and
    AMP's trainer skips steps whose scaled gradients overflow (so only the loss is checked)."""

    def __call__(self, batch: tuple, images=None, components: Optional[dict] = None) -> float:
        from mxnet.contrib import amp

        with autograd.record():
            losses, rec = self.losses(batch, images)
            losses = losses + rec
            with amp.scale_loss(losses, self.trainer) as scaled:
                autograd.backward(scaled)
        total = float(sum(v.sum().asscalar() for v in losses))
        if self.agree(not math.isfinite(total)):
            raise NonFiniteStep(f"non-finite loss ({total})")
        self.trainer.step(self.examples)
        return total
