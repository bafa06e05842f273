"""Build the parts of a run from the config; one training step; validation."""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from typing import Callable, Dict, List

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from .comparator import Comparator, training_comparator
from .config import Config
from .data import PairData, TrainPairs, prepare, train_source
from .device import parse_device
from .distributed import get_kvstore, rank_and_size
from .errors import TrainingError, UserError
from .evaluate import choose_threshold, pair_metrics
from .losses import build_loss
from .metrics import rates_at
from .model import as_tuple, branches, build_model
from .schedule import get_schedule
from .zoo import freeze, load_pretrained

log = logging.getLogger(__name__)


def _momentum(c) -> dict:
    return {"momentum": c.momentum}


OPTIMIZER_ARGS: Dict[str, Callable] = {  # optimizer name -> its extra arguments from the config
    "adam": lambda c: {}, "rmsprop": lambda c: {}, "adagrad": lambda c: {},
    "sgd": _momentum, "nag": _momentum,
}


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and mxnet (parameter initialisation, DataLoader shuffles)."""
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


@dataclass
class Parts:
    """What a run trains with. `blocks` maps checkpoint prefixes to the trained blocks."""

    cfg: Config
    ctxs: List[mx.Context]
    data: PairData
    net: gluon.HybridBlock
    loss: gluon.HybridBlock
    trainer: gluon.Trainer
    train_pairs: TrainPairs  # or TrainTriplets / TrainPK: the training batches
    lr_factor: Callable[[float], float]
    step: Callable  # train_step, or amp_train_step with train.amp
    step_pairs: int  # examples per step over all workers: gradients are averaged over these

    @property
    def blocks(self) -> Dict[str, gluon.Block]:
        return {"model": self.net, "loss": self.loss}


def unique_params(*blocks) -> list:
    """The distinct Parameter objects of blocks, in order: a parameter shared by two branches
    (or tied into a decoder) appears once, so the Trainer updates it once with its summed
    gradient."""
    seen: Dict[int, gluon.Parameter] = {}
    for block in blocks:
        for p in block.collect_params().values():
            seen.setdefault(id(p), p)
    return list(seen.values())


def build_trainer(params: list, cfg, n_devices: int) -> gluon.Trainer:
    """A Trainer for the `train` section; gradients summed over devices by the kvstore, and
    the update done locally (update_on_kvstore=False) so its state is ours to checkpoint."""
    if cfg.optimizer not in OPTIMIZER_ARGS:
        raise UserError(f"train.optimizer: unknown {cfg.optimizer!r} "
                        f"(valid: {', '.join(OPTIMIZER_ARGS)})")
    args = {"learning_rate": cfg.lr, "wd": cfg.wd, **OPTIMIZER_ARGS[cfg.optimizer](cfg)}
    dist = get_kvstore(cfg.kvstore)
    if dist is not None:
        return WorkerSumTrainer(params, cfg.optimizer, args, dist)
    kv = cfg.kvstore if n_devices > 1 else None
    return gluon.Trainer(params, cfg.optimizer, args, kvstore=kv,
                         update_on_kvstore=False if kv else None)


class WorkerSumTrainer(gluon.Trainer):
    """A Trainer that sums gradients over workers through a distributed kvstore.

    Gluon's own dist path keeps the initial weights and the summed gradients under the same
    keys and pulls the weights lazily inside the first step: a slow worker's pull could then
    receive summed gradients as weights (seen here: workers diverged in about one run in four).
    Here the store's keys only ever hold gradients, initialised by every worker and fenced by a
    barrier before any push; the weights need no broadcast, since every worker builds them from
    the same seed. Each worker then applies the same update locally. One device per worker.
    """

    def __init__(self, params, optimizer, args, kv: mx.kvstore.KVStore):
        super().__init__(params, optimizer, args, kvstore=None)
        self._workers_kv = kv
        for i, p in enumerate(self._params):
            if p.grad_req != "null":
                kv.init(i, mx.nd.zeros(p.shape, ctx=p.list_ctx()[0], dtype=p.dtype))
        mx.nd.waitall()
        kv._barrier()

    def _allreduce_grads(self):
        for i, p in enumerate(self._params):
            if p.grad_req != "null":
                self._workers_kv.pushpull(i, p.list_grad(), priority=-i)


def build_blocks(cfg: Config, ctxs: List[mx.Context]) -> tuple:
    """SiameseNet and loss block, initialised on `ctxs` and hybridized."""
    net = build_model(cfg.model)
    loss = build_loss(cfg)
    net.initialize(mx.init.Xavier(magnitude=2.0), ctx=ctxs)
    loss.initialize(mx.init.Xavier(), ctx=ctxs)
    # One imperative pass fixes deferred shapes before hybridizing.
    h, w = cfg.data.image_size
    x = mx.nd.zeros((2, cfg.data.channels, h, w), ctx=ctxs[0])
    loss(*as_tuple(net(*[x] * loss.n_inputs)), *loss.example_targets(2, ctxs[0]))
    for branch in branches(net):
        if cfg.model.pretrained:
            load_pretrained(branch, cfg.model.pretrained)
        if cfg.model.freeze:
            log.info("frozen: %d parameters", freeze(branch, cfg.model.freeze))
    for block in (net, loss):
        block.hybridize(static_alloc=True, static_shape=True)
    return net, loss


def build(cfg: Config, progress: bool = False) -> Parts:
    """Seed, pick devices, load data, build and initialise model, loss and trainer."""
    seed_everything(cfg.seed)
    ctxs = parse_device(cfg.device)
    if cfg.train.amp:
        init_amp(ctxs)
    data = prepare(cfg.data, cfg.seed, progress=progress)
    net, loss = build_blocks(cfg, ctxs)
    params = unique_params(net, loss)
    trainer = build_trainer(params, cfg.train, len(ctxs))
    if cfg.train.amp:
        from mxnet.contrib import amp

        amp.init_trainer(trainer)
    rank, workers = rank_and_size(cfg.train.kvstore)
    train_pairs = train_source(cfg, data, shard=(rank, workers))
    lr_factor = get_schedule(cfg.train.schedule, cfg.train.epochs, cfg.train.warmup_epochs)
    log.info("devices %s; model %s (%s), %d parameters; loss %s%s; batches of %d %s", ctxs,
             cfg.model.branch, cfg.model.forward_mode, sum(p.data(ctxs[0]).size for p in params),
             cfg.loss.name, f" ({cfg.loss.mining} mining)" if cfg.data.sampler == "pk" else "",
             train_pairs.batch_size, train_pairs.unit)
    step = amp_train_step if cfg.train.amp else train_step
    return Parts(cfg, ctxs, data, net, loss, trainer, train_pairs, lr_factor, step,
                 train_pairs.batch_size * workers)


def init_amp(ctxs: List[mx.Context]) -> None:
    """float16 AMP on GPUs (before the model is built); refused on CPU, where MXNet's AMP
    (bfloat16) trained slower than float32 (MXNET_NOTES)."""
    if any(c.device_type != "gpu" for c in ctxs):
        raise UserError("train.amp: mixed precision needs GPUs (device: gpu...); on CPU it is "
                        "refused because MXNet's CPU AMP trained slower than float32 here")
    from mxnet.contrib import amp

    amp.init(target_dtype="float16")


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


def train_step(net, loss_fn, trainer, ctxs, batch: tuple, batch_size: int) -> float:
    """One step on a batch split over devices; returns the summed loss.

    `batch` holds `loss_fn.n_inputs` image arrays, then the targets. Each device gets whole
    examples (every side of a pair or triplet). The loss is per example and `trainer.step`
    divides by the number of examples, so `twice` and `concat` get the same learning rate.

    Raises:
        NonFiniteStep: the loss or a gradient is not finite; the update was not applied
            (MXNet would apply NaN updates silently).
    """
    with autograd.record():
        losses = _losses(net, loss_fn, ctxs, batch)
    autograd.backward(losses)
    trained = [p for p in trainer._params if p.grad_req != "null"]
    # One sync for both checks: a NaN or inf anywhere makes its sum non-finite.
    sums = [mx.nd.concat(v.sum().reshape((1,)),
                         mx.nd.add_n(*[p.grad(c).sum() for p in trained]).reshape((1,)), dim=0)
            for v, c in zip(losses, ctxs)]
    total, grads = np.sum([s.asnumpy() for s in sums], axis=0, dtype=np.float64)
    if not math.isfinite(total):
        raise NonFiniteStep(f"non-finite loss ({total})")
    if not math.isfinite(grads):
        raise NonFiniteStep("non-finite gradient")
    trainer.step(batch_size)
    return float(total)


def amp_train_step(net, loss_fn, trainer, ctxs, batch: tuple, batch_size: int) -> float:
    """train_step under AMP: the loss is scaled for float16 gradients, and AMP's trainer skips
    steps whose scaled gradients overflow (so only the loss is checked here). GPU only."""
    from mxnet.contrib import amp

    with autograd.record():
        losses = _losses(net, loss_fn, ctxs, batch)
        with amp.scale_loss(losses, trainer) as scaled:
            autograd.backward(scaled)
    total = float(sum(v.sum().asscalar() for v in losses))
    if not math.isfinite(total):
        raise NonFiniteStep(f"non-finite loss ({total})")
    trainer.step(batch_size)
    return total


def comparator(parts: Parts) -> Comparator:
    """The network being trained as a pair scorer (see siamese.comparator)."""
    return training_comparator(parts.net, parts.loss.score_spec(), parts.data.mean,
                               parts.data.std, parts.cfg.train.eval_batch_size, parts.ctxs[0],
                               parts.cfg.data.right_view)


def split_scores(parts: Parts, split: str) -> tuple:
    """(scores, labels) of the model on the fixed `val` or `test` pairs."""
    rows = parts.data.pairs[split]
    return comparator(parts).score(parts.data.images, rows[:, 0], rows[:, 1]), rows[:, 2]


def validate(parts: Parts, split: str = "val", threshold=None) -> dict:
    """Verification metrics of the model on a fixed pair set (threshold None: chosen here)."""
    scores, labels = split_scores(parts, split)
    return pair_metrics(scores, labels, parts.loss.score_spec(), threshold)


def validate_and_test(parts: Parts) -> tuple:
    """(val metrics, test metrics, score spec with threshold): the threshold is chosen on the
    validation pairs by `eval.threshold` and applied unchanged to the test pairs."""
    spec = parts.loss.score_spec()
    val_scores, val_labels = split_scores(parts, "val")
    test_scores, test_labels = split_scores(parts, "test")
    spec = dict(spec, **choose_threshold(val_scores, val_labels, spec,
                                         parts.cfg.eval.threshold))
    val = pair_metrics(val_scores, val_labels, spec, spec["threshold"])
    test = pair_metrics(test_scores, test_labels, spec, spec["threshold"])
    for m, s, y in ((val, val_scores, val_labels), (test, test_scores, test_labels)):
        m.update(rates_at(s, y, spec["higher_is_similar"], spec["threshold"]),
                 threshold_rule=parts.cfg.eval.threshold)
    return val, test, spec
