"""Build the parts of a run from the config: seed, devices, data, network, loss, trainer, the
training batches and the schedule. Training composes data, models and losses here."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..config import Config
from ..data.augment import Augment
from ..data.loaders import BatchSource, ReconImages, build_source
from ..data.prepare import PairData, prepare
from ..losses.registry import build_loss
from ..models.architectures import (
    Architecture,
    architecture_of,
    as_tuple,
    build_model,
    get_architecture,
)
from ..models.decoder import AutoEncoder, build_decoder
from ..models.fused import fused_available, set_fused
from ..models.init import make_init
from ..models.pretrained import load_pretrained
from ..models.zoo import freeze
from .board import Quiet
from .collective import Local, collective
from .device import parse_device
from .distributed import get_kvstore, rank_and_size
from .pairing import Pairing, get_pairing
from .schedule import get_schedule
from .signals import StopOnSignal
from .step import AmpTrainStep, TrainStep
from .trainer import build_trainer, init_amp

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and mxnet (parameter initialisation, DataLoader shuffles)."""
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


@dataclass
class Parts:
    """What a run trains with, built whole by `build`. `blocks` maps checkpoint prefixes to
    the trained blocks."""

    cfg: Config
    ctxs: List[mx.Context]
    data: PairData
    net: gluon.HybridBlock
    loss: gluon.HybridBlock
    trainer: gluon.Trainer
    batches: BatchSource  # the training batches (pairs, triplets, P x K or none)
    lr_factor: Callable[[float], float]
    step: TrainStep  # called with each batch (AmpTrainStep with train.amp)
    pairing: Pairing  # the batch source and loss entry (siamese.train.pairing)
    collective: Local  # decisions all workers take together (a single process: Local)
    stop: StopOnSignal  # SIGINT / SIGTERM: finish the step, checkpoint, stop
    board: Quiet  # TensorBoard (log.tensorboard), or nothing
    autoencoder: Optional[gluon.HybridBlock] = None  # branch + decoder (model.decoder)
    recon_images: Optional[ReconImages] = None  # images for the reconstruction loss
    workers: int = 1  # processes training together (distributed), each on its own shard
    classes: int = 0  # classes of the data folder (labels index them)

    @property
    def arch(self) -> Architecture:
        return architecture_of(self.net)

    @property
    def decoder(self) -> Optional[gluon.HybridBlock]:
        return self.autoencoder.decoder if self.autoencoder is not None else None

    @property
    def blocks(self) -> Dict[str, gluon.Block]:
        return checkpoint_blocks(self.net, self.loss, self.autoencoder)

    @property
    def examples_per_step(self) -> int:
        """Examples of one step over all workers: gradients are averaged over these."""
        return self.step.examples


def checkpoint_blocks(net, loss, autoencoder=None) -> Dict[str, gluon.Block]:
    """{checkpoint prefix: block} of what a run trains."""
    blocks = {"model": net, "loss": loss}
    if autoencoder is not None:
        blocks["decoder"] = autoencoder.decoder
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


def pairing_of(cfg: Config) -> Pairing:
    """The batch source and loss entry of a config."""
    return get_pairing(cfg.loss.name, cfg.data.sampler, get_architecture(cfg.model.architecture))


def build_blocks(cfg: Config, ctxs: List[mx.Context], classes: int = 0) -> tuple:
    """Network, loss block and autoencoder (None without model.decoder), initialised on
    `ctxs` and hybridized. `classes`: how many classes labels index (a margin softmax has a
    weight per class)."""
    net = build_model(cfg.model)
    loss = build_loss(cfg.loss, cfg.model.distance, pairing_of(cfg).loss, classes,
                      cfg.model.embedding_size, cfg.model.members)
    net.initialize(make_init(cfg.model.init), ctx=ctxs)
    loss.initialize(mx.init.Xavier(), ctx=ctxs)
    # One imperative pass fixes deferred shapes before hybridizing.
    h, w = cfg.data.image_size
    x = mx.nd.zeros((2, cfg.data.channels, h, w), ctx=ctxs[0])
    emb = as_tuple(net(*[x] * max(loss.n_inputs, 1)))
    if loss.n_inputs:
        loss(*emb, *loss.example_targets(2, ctxs[0]))
    for branch in architecture_of(net).branches(net):
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
    if cfg.train.fused_ops and fused_available(ctxs) and set_fused(net, True):
        log.debug("training graph: fused BatchNorm+ReLU and pooling (train.fused_ops)")
    for block in (net, loss, autoencoder):
        if block is not None:
            block.hybridize(static_alloc=True, static_shape=True)
    return net, loss, autoencoder


def build(cfg: Config, progress: bool = False, board: Optional[Quiet] = None) -> Parts:
    """Seed, pick devices, load data, build and initialise model, loss, trainer and step.

    Args:
        progress: progress bars while decoding.
        board: where per-step and per-epoch figures go (TensorBoard), or nothing.
    """
    seed_everything(cfg.seed)
    ctxs = parse_device(cfg.device)
    if cfg.train.amp:
        init_amp(ctxs)
    pairing = pairing_of(cfg)
    data = prepare(cfg.data, cfg.seed, progress=progress, unlabelled_ok=not pairing.labelled)
    classes = data.training().classes  # rotation classes (data.rotate_classes) included
    net, loss, autoencoder = build_blocks(cfg, ctxs, classes)
    params = unique_params(*[b for b in (net, loss, autoencoder) if b is not None])
    trainer = build_trainer(params, cfg.train, len(ctxs))
    if cfg.train.amp:
        from mxnet.contrib import amp

        amp.init_trainer(trainer)
    rank, workers = rank_and_size(cfg.train.kvstore)
    source = build_source(pairing.source, data, cfg.data, cfg.train.batch_size,
                          cfg.train.pairs_per_epoch, cfg.seed, shard=(rank, workers))
    lr_factor = get_schedule(cfg.train.schedule, cfg.train.epochs, cfg.train.warmup_epochs)
    _log_parts(cfg, ctxs, net, params, source, pairing)
    recon = None
    if autoencoder is not None:
        recon = ReconImages(data, source.batch_size, Augment.of(cfg.data), cfg.seed,
                            shard=(rank, workers))
        log.info("decoder %s: reconstruction loss x %g on batches of %d of all %d training "
                 "images", cfg.model.decoder, cfg.loss.reconstruction_weight,
                 source.batch_size, len(recon.index))
    together = collective(get_kvstore(cfg.train.kvstore), checkpoint_blocks(net, loss,
                                                                            autoencoder))
    stop = StopOnSignal()
    step = (AmpTrainStep if cfg.train.amp else TrainStep)(
        net, loss, trainer, ctxs, source.batch_size * workers,
        agree=lambda bad: together.agree(bad, stop), autoencoder=autoencoder,
        recon_weight=cfg.loss.reconstruction_weight)
    return Parts(cfg, ctxs, data, net, loss, trainer, source, lr_factor, step, pairing,
                 together, stop, board or Quiet(), autoencoder, recon, workers=workers,
                 classes=classes)


def _log_parts(cfg: Config, ctxs, net, params, source: BatchSource, pairing: Pairing) -> None:
    mode = getattr(net, "forward_mode", "per side")
    log.info("devices %s; model %s %s (%s), %d parameters; loss %s%s; batches of %d %s", ctxs,
             cfg.model.architecture, cfg.model.branch, mode,
             sum(p.data(ctxs[0]).size for p in params),
             cfg.loss.name, f" ({cfg.loss.mining} mining)" if pairing.source == "pk" else "",
             source.batch_size, source.unit)
    if cfg.data.split == "class" and pairing.loss == "logistic":
        log.warning("loss.name logistic with data.split class: the learned head weighs the "
                    "training classes' embedding differences and scored below chance on unseen "
                    "digits in one of two draws (docs/training.md, 'Contrastive or triplet'); "
                    "contrastive or triplet is safer for classes never seen in training")
