"""One training step: forward on every device, backward, a single check that the loss and the
gradients are finite, then the update."""

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


def _losses(net, loss_fn, ctxs, batch) -> list:
    """Per-device loss vectors of a batch (images..., targets...), recorded for autograd."""
    shards = [gluon.utils.split_and_load(a, ctxs, even_split=False) for a in batch]
    k = loss_fn.n_inputs
    out = []
    for arrays in zip(*shards):
        out.append(loss_fn(*as_tuple(net(*arrays[:k])), *arrays[k:]))
    return out


def _recon_losses(recon, ctxs) -> list:
    """Per-device weighted reconstruction losses (B,) of (autoencoder, images, weight)."""
    if recon is None:
        return []
    autoencoder, x, weight = recon
    return [weight * reconstruction_loss(mx.nd, autoencoder(xs), xs)
            for xs in gluon.utils.split_and_load(x, ctxs, even_split=False)]


def _check_sums(losses, rec, trained, ctxs, squares: bool) -> np.ndarray:
    """[summed loss, summed reconstruction loss, a sum over every gradient] with one sync: a
    NaN or inf anywhere makes its sum non-finite. `squares`: the gradients' sums of squares in
    one operator (multi_sum_sq) instead of one sum per array, ~4% of a 32x32 step."""
    zero = [mx.nd.zeros((1,), ctx=c) for c in ctxs]
    sums = []
    for v, r, c in zip(losses or zero, rec or zero, ctxs):
        g = [p.grad(c) for p in trained]
        g = (mx.nd.multi_sum_sq(*g, num_arrays=len(g)).sum() if squares and g else
             mx.nd.add_n(*[a.sum() for a in g]) if g else mx.nd.zeros((1,), ctx=c))
        sums.append(mx.nd.concat(v.sum().reshape((1,)), r.sum().reshape((1,)), g.reshape((1,)),
                                 dim=0))
    return np.sum([s.asnumpy() for s in sums], axis=0, dtype=np.float64)


def train_step(net, loss_fn, trainer, ctxs, batch: tuple, batch_size: int, recon=None,
               components: Optional[dict] = None,
               agree: Optional[Callable[[bool], bool]] = None, squares: bool = True) -> float:
    """One step on a batch split over devices; returns the summed loss.

    `batch` holds `loss_fn.n_inputs` image arrays, then the targets. Each device gets whole
    examples (every side of a pair or triplet). The loss is per example and `trainer.step`
    divides by the number of examples, so `twice` and `concat` get the same learning rate.
    `recon` = (autoencoder, images (B, C, H, W), weight) adds weight x the reconstruction loss
    of B images; `components` then receives the summed "similarity" and "reconstruction".
    `agree(nonfinite here) -> nonfinite on any worker` makes the skip a decision every worker
    of a distributed run takes together (none pushes gradients, so none waits).
    `squares=False` checks with one sum per gradient array, as before multi_sum_sq (the bench
    measures both); the verdict is the same.

    Raises:
        NonFiniteStep: the loss or a gradient is not finite; the update was not applied
            (MXNet would apply NaN updates silently).
    """
    with autograd.record():
        losses = _losses(net, loss_fn, ctxs, batch) if loss_fn.n_inputs else []
        rec = _recon_losses(recon, ctxs)
    autograd.backward(losses + rec)
    trained = [p for p in trainer._params if p.grad_req != "null"]
    sim, rec_sum, grads = _check_sums(losses, rec, trained, ctxs, squares)
    if squares and not math.isfinite(grads):  # finite squares overflow beyond ~1e19
        grads = _check_sums(losses, rec, trained, ctxs, False)[2]
    total = sim + rec_sum
    if components is not None:
        components["similarity"] = components.get("similarity", 0.0) + sim
        components["reconstruction"] = components.get("reconstruction", 0.0) + rec_sum
    local = not math.isfinite(total) or not math.isfinite(grads)
    if (agree(local) if agree is not None else local):
        raise NonFiniteStep(f"non-finite loss ({total})" if not math.isfinite(total) else
                            "non-finite gradient" if local else
                            "non-finite loss or gradient on another worker")
    trainer.step(batch_size)
    return float(total)


def amp_train_step(net, loss_fn, trainer, ctxs, batch: tuple, batch_size: int, recon=None,
                   components: Optional[dict] = None,
                   agree: Optional[Callable[[bool], bool]] = None) -> float:
    """train_step under AMP: the loss is scaled for float16 gradients, and AMP's trainer skips
    steps whose scaled gradients overflow (so only the loss is checked here). GPU only."""
    from mxnet.contrib import amp

    with autograd.record():
        losses = _losses(net, loss_fn, ctxs, batch) if loss_fn.n_inputs else []
        losses = losses + _recon_losses(recon, ctxs)
        with amp.scale_loss(losses, trainer) as scaled:
            autograd.backward(scaled)
    total = float(sum(v.sum().asscalar() for v in losses))
    if (agree or bool)(not math.isfinite(total)):
        raise NonFiniteStep(f"non-finite loss ({total})")
    trainer.step(batch_size)
    return total
