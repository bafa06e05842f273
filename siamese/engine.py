"""Build the parts of a run from the config; one training step; validation."""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from .comparator import Comparator, training_comparator
from .config import Config, parse_init
from .data import PairData, ReconImages, TrainPairs, prepare, train_source
from .decoder import AutoEncoder, build_decoder, reconstruction_loss
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
    autoencoder: Optional[gluon.HybridBlock] = None  # branch + decoder (model.decoder)
    recon_images: Optional[ReconImages] = None  # images for the reconstruction loss

    @property
    def decoder(self) -> Optional[gluon.HybridBlock]:
        return self.autoencoder.decoder if self.autoencoder is not None else None

    @property
    def blocks(self) -> Dict[str, gluon.Block]:
        blocks = {"model": self.net, "loss": self.loss}
        if self.autoencoder is not None:
            blocks["decoder"] = self.autoencoder.decoder
        return blocks


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


def make_init(text: str) -> mx.init.Initializer:
    """The `model.init` initializer. `gluon` is MXNet's own default, Uniform(0.07); `pytorch`
    is PyTorch's default for conv and linear weights, kaiming_uniform(a=sqrt(5)), which is
    uniform in +-1/sqrt(fan_in): Xavier(uniform, factor in, magnitude 1)."""
    name, args = parse_init(text)  # names, arguments and values checked there (no RNG use)
    if name == "gluon":
        return mx.init.Uniform(0.07)
    if name == "pytorch":
        return mx.init.Xavier(rnd_type="uniform", factor_type="in", magnitude=1.0)
    return {"xavier": mx.init.Xavier, "msra": mx.init.MSRAPrelu, "uniform": mx.init.Uniform,
            "normal": mx.init.Normal, "orthogonal": mx.init.Orthogonal}[name](**args)


def build_blocks(cfg: Config, ctxs: List[mx.Context]) -> tuple:
    """Network, loss block and autoencoder (None without model.decoder), initialised on
    `ctxs` and hybridized."""
    net = build_model(cfg.model)
    loss = build_loss(cfg)
    net.initialize(make_init(cfg.model.init), ctx=ctxs)
    loss.initialize(mx.init.Xavier(), ctx=ctxs)
    # One imperative pass fixes deferred shapes before hybridizing.
    h, w = cfg.data.image_size
    x = mx.nd.zeros((2, cfg.data.channels, h, w), ctx=ctxs[0])
    emb = as_tuple(net(*[x] * max(loss.n_inputs, 1)))
    if loss.n_inputs:
        loss(*emb, *loss.example_targets(2, ctxs[0]))
    for branch in branches(net):
        if cfg.model.pretrained:
            load_pretrained(branch, cfg.model.pretrained)
        if cfg.model.freeze:
            log.info("frozen: %d parameters", freeze(branch, cfg.model.freeze))
    autoencoder = None
    if cfg.model.decoder != "none":
        decoder = build_decoder(net.branch, cfg.model.decoder, (cfg.data.channels, h, w))
        branch_ids = {id(p) for p in net.branch.collect_params().values()}
        for p in decoder.collect_params().values():
            if id(p) not in branch_ids:
                p.initialize(default_init=make_init(cfg.model.init), ctx=ctxs)
        autoencoder = AutoEncoder(net.branch, decoder)
        autoencoder(x)
    for block in (net, loss, autoencoder):
        if block is not None:
            block.hybridize(static_alloc=True, static_shape=True)
    return net, loss, autoencoder


def build(cfg: Config, progress: bool = False) -> Parts:
    """Seed, pick devices, load data, build and initialise model, loss and trainer."""
    seed_everything(cfg.seed)
    ctxs = parse_device(cfg.device)
    if cfg.train.amp:
        init_amp(ctxs)
    data = prepare(cfg.data, cfg.seed, progress=progress,
                   unlabelled_ok=cfg.loss.name == "none")
    net, loss, autoencoder = build_blocks(cfg, ctxs)
    params = unique_params(*[b for b in (net, loss, autoencoder) if b is not None])
    trainer = build_trainer(params, cfg.train, len(ctxs))
    if cfg.train.amp:
        from mxnet.contrib import amp

        amp.init_trainer(trainer)
    rank, workers = rank_and_size(cfg.train.kvstore)
    train_pairs = train_source(cfg, data, shard=(rank, workers))
    lr_factor = get_schedule(cfg.train.schedule, cfg.train.epochs, cfg.train.warmup_epochs)
    mode = cfg.model.forward_mode if cfg.model.architecture == "siamese" else "per side"
    log.info("devices %s; model %s %s (%s), %d parameters; loss %s%s; batches of %d %s", ctxs,
             cfg.model.architecture, cfg.model.branch, mode,
             sum(p.data(ctxs[0]).size for p in params),
             cfg.loss.name, f" ({cfg.loss.mining} mining)" if cfg.data.sampler == "pk" else "",
             train_pairs.batch_size, train_pairs.unit)
    if cfg.data.split == "class" and cfg.loss.name == "logistic" \
            and cfg.model.architecture != "two_channel":
        log.warning("loss.name logistic with data.split class: the learned head weighs the "
                    "training classes' embedding differences and scored below chance on unseen "
                    "digits in one of two draws (README, 'Contrastive or triplet'); contrastive "
                    "or triplet is safer for classes never seen in training")
    step = amp_train_step if cfg.train.amp else train_step
    recon = None
    if autoencoder is not None:
        recon = ReconImages(data, train_pairs.batch_size, cfg.data.augment_shift, cfg.seed,
                            shard=(rank, workers))
        log.info("decoder %s: reconstruction loss x %g on batches of %d of all %d training "
                 "images", cfg.model.decoder, cfg.loss.reconstruction_weight,
                 train_pairs.batch_size, len(recon.index))
    return Parts(cfg, ctxs, data, net, loss, trainer, train_pairs, lr_factor, step,
                 train_pairs.batch_size * workers, autoencoder, recon)


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


def _recon_losses(recon, ctxs) -> list:
    """Per-device weighted reconstruction losses (B,) of (autoencoder, images, weight)."""
    if recon is None:
        return []
    autoencoder, x, weight = recon
    return [weight * reconstruction_loss(mx.nd, autoencoder(xs), xs)
            for xs in gluon.utils.split_and_load(x, ctxs, even_split=False)]


def train_step(net, loss_fn, trainer, ctxs, batch: tuple, batch_size: int, recon=None,
               components: Optional[dict] = None) -> float:
    """One step on a batch split over devices; returns the summed loss.

    `batch` holds `loss_fn.n_inputs` image arrays, then the targets. Each device gets whole
    examples (every side of a pair or triplet). The loss is per example and `trainer.step`
    divides by the number of examples, so `twice` and `concat` get the same learning rate.
    `recon` = (autoencoder, images (B, C, H, W), weight) adds weight x the reconstruction loss
    of B images; `components` then receives the summed "similarity" and "reconstruction".

    Raises:
        NonFiniteStep: the loss or a gradient is not finite; the update was not applied
            (MXNet would apply NaN updates silently).
    """
    with autograd.record():
        losses = _losses(net, loss_fn, ctxs, batch) if loss_fn.n_inputs else []
        rec = _recon_losses(recon, ctxs)
    autograd.backward(losses + rec)
    trained = [p for p in trainer._params if p.grad_req != "null"]
    # One sync for all checks: a NaN or inf anywhere makes its sum non-finite.
    zero = [mx.nd.zeros((1,), ctx=c) for c in ctxs]
    sums = [mx.nd.concat(v.sum().reshape((1,)), r.sum().reshape((1,)),
                         mx.nd.add_n(*[p.grad(c).sum() for p in trained]).reshape((1,)), dim=0)
            for v, r, c in zip(losses or zero, rec or zero, ctxs)]
    sim, rec_sum, grads = np.sum([s.asnumpy() for s in sums], axis=0, dtype=np.float64)
    total = sim + rec_sum
    if components is not None:
        components["similarity"] = components.get("similarity", 0.0) + sim
        components["reconstruction"] = components.get("reconstruction", 0.0) + rec_sum
    if not math.isfinite(total):
        raise NonFiniteStep(f"non-finite loss ({total})")
    if not math.isfinite(grads):
        raise NonFiniteStep("non-finite gradient")
    trainer.step(batch_size)
    return float(total)


def amp_train_step(net, loss_fn, trainer, ctxs, batch: tuple, batch_size: int, recon=None,
                   components: Optional[dict] = None) -> float:
    """train_step under AMP: the loss is scaled for float16 gradients, and AMP's trainer skips
    steps whose scaled gradients overflow (so only the loss is checked here). GPU only."""
    from mxnet.contrib import amp

    with autograd.record():
        losses = _losses(net, loss_fn, ctxs, batch) if loss_fn.n_inputs else []
        losses = losses + _recon_losses(recon, ctxs)
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


def has_pairs(parts: Parts) -> bool:
    """False for reconstruction-only runs on unlabelled images (no validation/test pairs)."""
    return len(parts.data.pairs["val"]) > 0 and len(parts.data.pairs["test"]) > 0


def validate(parts: Parts, split: str = "val", threshold=None) -> dict:
    """Verification metrics of the model on a fixed pair set (threshold None: chosen here);
    None values when the run has no pairs (unlabelled reconstruction-only training)."""
    if not has_pairs(parts):
        return {"auc": None, "eer": None, "accuracy": None, "threshold": None, "n_pairs": 0}
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
