"""Build the parts of a run from the config, train them, checkpoint, evaluate and export."""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from . import checkpoint
from .config import Config, to_dict, to_yaml
from .data import PairData, TrainPairs, prepare
from .device import parse_device
from .errors import TrainingError, UserError
from .evaluate import pair_metrics, score_rows
from .export import export_run
from .losses import build_loss
from .model import build_model
from .pairs import write_pairs_csv
from .rundir import append_jsonl, write_json
from .schedule import get_schedule

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
    train_pairs: TrainPairs
    lr_factor: Callable[[float], float]

    @property
    def blocks(self) -> Dict[str, gluon.Block]:
        return {"model": self.net, "loss": self.loss}


def build_trainer(params: list, cfg, n_devices: int) -> gluon.Trainer:
    """A Trainer for the `train` section; gradients summed over devices by the kvstore, and
    the update done locally (update_on_kvstore=False) so its state is ours to checkpoint."""
    if cfg.optimizer not in OPTIMIZER_ARGS:
        raise UserError(f"train.optimizer: unknown {cfg.optimizer!r} "
                        f"(valid: {', '.join(OPTIMIZER_ARGS)})")
    args = {"learning_rate": cfg.lr, "wd": cfg.wd, **OPTIMIZER_ARGS[cfg.optimizer](cfg)}
    distributed = cfg.kvstore.startswith("dist")
    kv = cfg.kvstore if (n_devices > 1 or distributed) else None
    return gluon.Trainer(params, cfg.optimizer, args, kvstore=kv,
                         update_on_kvstore=False if kv else None)


def build_blocks(cfg: Config, ctxs: List[mx.Context]) -> tuple:
    """SiameseNet and loss block, initialised on `ctxs` and hybridized."""
    net = build_model(cfg.model)
    loss = build_loss(cfg.loss)
    net.initialize(mx.init.Xavier(magnitude=2.0), ctx=ctxs)
    loss.initialize(mx.init.Xavier(), ctx=ctxs)
    # One imperative pass fixes deferred shapes before hybridizing.
    h, w = cfg.data.image_size
    x = mx.nd.zeros((2, cfg.data.channels, h, w), ctx=ctxs[0])
    e1, e2 = net(x, x)
    loss(e1, e2, mx.nd.zeros((2,), ctx=ctxs[0]))
    for block in (net, loss):
        block.hybridize(static_alloc=True, static_shape=True)
    return net, loss


def build(cfg: Config, progress: bool = False) -> Parts:
    """Seed, pick devices, load data, build and initialise model, loss and trainer."""
    seed_everything(cfg.seed)
    ctxs = parse_device(cfg.device)
    data = prepare(cfg.data, cfg.seed, progress=progress)
    net, loss = build_blocks(cfg, ctxs)
    params = list(net.collect_params().values()) + list(loss.collect_params().values())
    trainer = build_trainer(params, cfg.train, len(ctxs))
    train_pairs = TrainPairs(data, cfg.train.batch_size, cfg.train.pairs_per_epoch,
                             cfg.data.augment_shift, cfg.seed)
    lr_factor = get_schedule(cfg.train.schedule, cfg.train.epochs, cfg.train.warmup_epochs)
    log.info("devices %s; model %s (%s), %d parameters; loss %s", ctxs, cfg.model.branch,
             cfg.model.forward_mode, sum(p.data(ctxs[0]).size for p in params), cfg.loss.name)
    return Parts(cfg, ctxs, data, net, loss, trainer, train_pairs, lr_factor)


def train_step(net, loss_fn, trainer, ctxs, x1, x2, label, batch_size: int) -> float:
    """One step on a batch of pairs split over devices; returns the summed loss.

    Each device gets whole pairs (both images). The loss is per pair and `trainer.step`
    divides by the number of pairs, so `twice` and `concat` get the same learning rate.

    Raises:
        TrainingError: the loss is not finite; the step is not applied.
    """
    shards = [gluon.utils.split_and_load(a, ctxs, even_split=False) for a in (x1, x2, label)]
    with autograd.record():
        losses = [loss_fn(*net(a, b), y) for a, b, y in zip(*shards)]
    autograd.backward(losses)
    total = sum(float(v.sum().asscalar()) for v in losses)
    if not math.isfinite(total):
        raise TrainingError(f"non-finite loss ({total})")
    trainer.step(batch_size)
    return total


def validate(parts: Parts, split: str = "val", threshold=None) -> dict:
    """Verification metrics of the model on a fixed pair set (threshold None: chosen here)."""
    rows = parts.data.pairs[split]
    spec = parts.loss.score_spec()
    scores = score_rows(parts.net.branch, parts.data.images, rows, spec, parts.data.mean,
                        parts.data.std, parts.cfg.train.eval_batch_size, parts.ctxs[0])
    return pair_metrics(scores, rows[:, 2], spec, threshold)


def run_epoch(parts: Parts, epoch: int, progress: bool = False) -> dict:
    """Train one epoch (0-based); returns its log fields."""
    tp, cfg = parts.train_pairs, parts.cfg.train
    n = tp.batches_per_epoch()
    batches = tp.loader(epoch)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, total=n, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                       leave=False, disable=None)
    start, total, lr = time.perf_counter(), 0.0, cfg.lr
    for k, (x1, x2, y) in enumerate(batches):
        lr = cfg.lr * parts.lr_factor(epoch + (k + 1) / n)
        parts.trainer.set_learning_rate(lr)
        try:
            total += train_step(parts.net, parts.loss, parts.trainer, parts.ctxs, x1, x2, y,
                                cfg.batch_size)
        except TrainingError as e:
            raise TrainingError(f"epoch {epoch + 1}, batch {k + 1}: {e}") from None
    mx.nd.waitall()
    seconds = time.perf_counter() - start
    pairs = n * cfg.batch_size
    return {"train_loss": total / pairs, "pairs_per_s": pairs / seconds, "lr": lr,
            "train_seconds": seconds}


def write_pair_lists(parts: Parts, run_dir: Path) -> None:
    for split in ("val", "test"):
        write_pairs_csv(run_dir / "pairs" / f"{split}.csv", parts.data.folder.paths,
                        parts.data.pairs[split])


def fit(cfg: Config, run_dir: Path, progress: bool = False) -> dict:
    """Train, keep the best epoch by validation AUC, score test pairs, export. Returns metrics."""
    t0 = time.perf_counter()
    (run_dir / "config.yaml").write_text(to_yaml(cfg))
    parts = build(cfg, progress)
    write_pair_lists(parts, run_dir)
    ckpt = run_dir / "checkpoints"
    best = {"epoch": 0, "auc": -1.0, "eer": 1.0}
    for epoch in range(cfg.train.epochs):
        e_start = time.perf_counter()
        row = run_epoch(parts, epoch, progress)
        val = validate(parts)
        row = {"epoch": epoch + 1, "train_loss": row["train_loss"], "val_auc": val["auc"],
               "val_eer": val["eer"], "val_accuracy": val["accuracy"],
               "pairs_per_s": row["pairs_per_s"], "lr": row["lr"],
               "seconds": time.perf_counter() - e_start}
        improved = (val["auc"], -val["eer"]) > (best["auc"], -best["eer"])
        if improved:
            best = {"epoch": epoch + 1, "auc": val["auc"], "eer": val["eer"]}
        meta = {"epoch": epoch + 1, "best": best, "config": to_dict(cfg)}
        checkpoint.save(ckpt / "last.ckpt", parts.blocks, parts.trainer, meta)
        if improved:
            checkpoint.save(ckpt / "best.ckpt", parts.blocks, parts.trainer, meta)
        append_jsonl(run_dir / "log.jsonl", row)
        log.info("epoch %d/%d  loss %.4f  val auc %.4f eer %.4f acc %.4f  %.0f pairs/s  "
                 "lr %.2g  %.1fs%s", epoch + 1, cfg.train.epochs, row["train_loss"],
                 val["auc"], val["eer"], val["accuracy"], row["pairs_per_s"], row["lr"],
                 row["seconds"], "  *best" if improved else "")
    train_seconds = time.perf_counter() - t0
    return finish(parts, run_dir, best["epoch"], train_seconds)


def finish(parts: Parts, run_dir: Path, best_epoch: int, train_seconds: float) -> dict:
    """Load the best checkpoint, choose the threshold on validation, score test, export."""
    checkpoint.restore(run_dir / "checkpoints" / "best.ckpt", parts.blocks)
    val = validate(parts)
    test = validate(parts, "test", threshold=val["threshold"])
    spec = dict(parts.loss.score_spec(), threshold=val["threshold"])
    sample = parts.data.images[parts.data.splits["test"][:16]]
    diff = export_run(parts.net.branch, spec, parts.cfg.data, parts.cfg.model, sample,
                      run_dir / "export", parts.ctxs[0])
    metrics = {"val": val, "test": test, "best_epoch": best_epoch,
               "train_seconds": train_seconds, "export_max_abs_diff": diff}
    write_json(run_dir / "metrics.json", metrics)
    return metrics
