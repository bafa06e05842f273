"""The training loop: epochs, checkpoints, resume, signals, non-finite steps, final export.

A run can stop at any moment and continue: checkpoints are written by rename, hold the loop's
position (epoch and batch), and each epoch's pairs come from a generator seeded by the epoch, so
a resumed run replays the same draws and ends with the figures of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import mxnet as mx
import numpy as np

from . import checkpoint
from .config import Config, to_dict, to_yaml
from .distributed import params_digest
from .engine import NonFiniteStep, Parts, build, has_pairs, validate, validate_and_test
from .errors import Interrupted, TrainingError, UserError
from .export import export_run
from .pairs import write_pairs_csv, write_split_csv
from .resume import truncate_log
from .rundir import append_jsonl, write_json, write_text
from .sharing import format_sharing_map, model_uses, sharing_map
from .signals import StopOnSignal

log = logging.getLogger(__name__)


@dataclass
class State:
    """Where the loop is; saved in every checkpoint."""

    epoch: int = 0  # completed epochs
    batch: int = 0  # completed batches of the current epoch (a mid-epoch checkpoint)
    loss_sum: float = 0.0  # summed loss over those batches
    parts_sum: dict = field(default_factory=dict)  # similarity / reconstruction sums
    best: dict = field(default_factory=lambda: {"epoch": 0, "auc": -1.0, "eer": 1.0,
                                                "reconstruction": float("inf")})
    train_seconds: float = 0.0
    skipped: int = 0  # non-finite batches skipped so far
    stopped_early: bool = False  # train.patience epochs passed without a better val AUC


class StopOnNonFinite:
    """train.nonfinite: stop. The step is not applied; the run stops (exit 1)."""

    def __init__(self, limit: int):
        pass

    def before(self, parts: Parts) -> None:
        pass

    def handle(self, parts: Parts, state: State, where: str, err: Exception) -> None:
        raise TrainingError(f"{where}: {err}; the step was not applied and the last "
                            f"checkpoint is kept (train.nonfinite: skip would skip such batches)")


class SkipNonFinite:
    """train.nonfinite: skip. Skip up to `limit` batches; BatchNorm running statistics, which
    the bad batch's forward pass already changed, are put back."""

    def __init__(self, limit: int):
        self.limit = limit
        self.saved: list = []

    def before(self, parts: Parts) -> None:
        aux = [p for b in parts.blocks.values() for p in b.collect_params().values()
               if p.grad_req == "null"]
        self.saved = [(p, [p.data(c).copy() for c in p.list_ctx()]) for p in aux]

    def handle(self, parts: Parts, state: State, where: str, err: Exception) -> None:
        state.skipped += 1
        if state.skipped > self.limit:
            raise TrainingError(f"{where}: {err}; more than train.max_skipped_batches="
                                f"{self.limit} non-finite batches, stopping")
        for p, copies in self.saved:
            for c, value in zip(p.list_ctx(), copies):
                value.copyto(p.data(c))
        log.warning("%s: %s; batch skipped (%d of at most %d)", where, err, state.skipped,
                    self.limit)


NONFINITE = {"stop": StopOnNonFinite, "skip": SkipNonFinite}


def run_epoch(parts: Parts, state: State, stop: StopOnSignal, policy, progress: bool) -> bool:
    """Train from `state.batch` to the end of epoch `state.epoch`; False if a signal stopped it.

    Batches before `state.batch` are drawn and discarded, so their random draws are replayed.
    """
    tp, cfg = parts.train_pairs, parts.cfg.train
    n = tp.batches_per_epoch()
    batches = tp.loader(state.epoch)
    recon = parts.recon_images.batches(state.epoch, n) if parts.recon_images else None
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, total=n, desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
                       unit="batch", leave=False, disable=None)
    for k, batch in enumerate(batches):
        images = next(recon) if recon is not None else None
        if k < state.batch:
            continue
        parts.trainer.set_learning_rate(cfg.lr * parts.lr_factor(state.epoch + (k + 1) / n))
        policy.before(parts)
        extra = None if images is None else \
            (parts.autoencoder, images, parts.cfg.loss.reconstruction_weight)
        try:
            state.loss_sum += parts.step(parts.net, parts.loss, parts.trainer, parts.ctxs,
                                         batch, parts.step_pairs, extra, state.parts_sum)
        except NonFiniteStep as e:
            policy.handle(parts, state, f"epoch {state.epoch + 1}, batch {k + 1}", e)
        state.batch = k + 1
        if stop.requested:
            return False
    mx.nd.waitall()
    return True


def _f4(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def val_reconstruction(parts: Parts, split: str = "val") -> float:
    """Mean squared reconstruction error of the validation (or test) images, unweighted."""
    from .decoder import reconstruction_loss
    from .images import to_tensor

    autoencoder = parts.autoencoder
    assert autoencoder is not None
    images = parts.data.images[parts.data.splits[split]]
    b, total = parts.cfg.train.eval_batch_size, 0.0
    for s in range(0, len(images), b):
        chunk = images[s:s + b]
        real = len(chunk)
        if real < b:  # static shapes
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], b - real, 0)])
        x = mx.nd.array(to_tensor(chunk, parts.data.mean, parts.data.std), ctx=parts.ctxs[0])
        total += float(reconstruction_loss(mx.nd, autoencoder(x), x)[:real].sum()
                       .asscalar())
    return total / max(len(images), 1)


def save_checkpoints(parts: Parts, run_dir: Path, state: State, improved: bool) -> Path:
    """best (if improved), then the epoch file (at epoch ends), then last; old epochs pruned."""
    ckpt = run_dir / "checkpoints"
    meta = {"epoch": state.epoch, "batch": state.batch, "state": dataclasses.asdict(state),
            "config": to_dict(parts.cfg)}
    if improved:
        checkpoint.save(ckpt / "best.ckpt", parts.blocks, parts.trainer, meta)
    if state.batch == 0:
        checkpoint.save(ckpt / f"epoch-{state.epoch:04d}.ckpt", parts.blocks, parts.trainer,
                        meta)
        for old in sorted(ckpt.glob("epoch-*.ckpt"))[:-parts.cfg.train.keep_checkpoints]:
            old.unlink(missing_ok=True)
    checkpoint.save(ckpt / "last.ckpt", parts.blocks, parts.trainer, meta)
    return ckpt / "last.ckpt"


def end_epoch(parts: Parts, run_dir: Path, state: State, seconds: float, trained: int) -> None:
    """Validate, update best, checkpoint and log a finished epoch."""
    val = validate(parts)
    tp = parts.train_pairs
    examples = tp.batches_per_epoch() * tp.batch_size
    row = {"epoch": state.epoch + 1, "train_loss": state.loss_sum / examples,
           "val_auc": val["auc"], "val_eer": val["eer"], "val_accuracy": val["accuracy"],
           "examples_per_s": trained * tp.batch_size / max(seconds, 1e-9), "unit": tp.unit,
           "lr": parts.trainer.learning_rate, "seconds": seconds}
    if parts.autoencoder is not None:
        row.update({f"train_{k}": v / examples for k, v in state.parts_sum.items()},
                   val_reconstruction=val_reconstruction(parts))
    if parts.cfg.loss.name == "none":  # labels ignored: the best epoch reconstructs best
        improved = row["val_reconstruction"] < state.best.get("reconstruction", float("inf"))
    else:
        improved = (val["auc"], -val["eer"]) > (state.best["auc"], -state.best["eer"])
    state.epoch, state.batch, state.loss_sum, state.parts_sum = state.epoch + 1, 0, 0.0, {}
    if improved:
        state.best = {"epoch": state.epoch, "auc": val["auc"], "eer": val["eer"],
                      "reconstruction": row.get("val_reconstruction", float("inf"))}
    patience = parts.cfg.train.patience
    if patience and state.epoch < parts.cfg.train.epochs and \
            state.epoch - state.best["epoch"] >= patience:
        state.stopped_early = True
        row["early_stop"] = True
    # The log line first: a crash before the checkpoint only makes the resumed run cut it and
    # redo the epoch; the other order could lose the line of an epoch the checkpoint holds.
    append_jsonl(run_dir / "log.jsonl", row)
    save_checkpoints(parts, run_dir, state, improved)
    log.info("epoch %d/%d  loss %.4f  val auc %s eer %s acc %s  %.0f %s/s  lr %.2g  "
             "%.1fs%s", state.epoch, parts.cfg.train.epochs, row["train_loss"],
             *(_f4(val[k]) for k in ("auc", "eer", "accuracy")), row["examples_per_s"],
             tp.unit, row["lr"], seconds, "  *best" if improved else "")
    if parts.autoencoder is not None:
        log.info("  similarity %.4f  reconstruction %.4f (x %g)  val reconstruction %.4f",
                 row.get("train_similarity", 0.0), row["train_reconstruction"],
                 parts.cfg.loss.reconstruction_weight, row["val_reconstruction"])
    if state.stopped_early:
        log.info("early stop after epoch %d: no better validation AUC for %d epochs "
                 "(train.patience); the best epoch is %d", state.epoch, patience,
                 state.best["epoch"])


SPLIT_FILES = ("val.csv", "test.csv", "split.csv")


def _pair_lists(parts: Parts, folder: Path) -> dict:
    """Write pairs/val.csv, test.csv and split.csv (every image's split); their bytes."""
    for split in ("val", "test"):
        write_pairs_csv(folder / f"{split}.csv", parts.data.folder.paths, parts.data.pairs[split])
    write_split_csv(folder / "split.csv", parts.data)
    return {name: (folder / name).read_bytes() for name in SPLIT_FILES}


def start(parts: Parts, run_dir: Path, resume: Optional[tuple]) -> State:
    """A fresh state, or the checkpoint's (parameters and optimizer restored, data checked)."""
    if resume is None:
        _pair_lists(parts, run_dir / "pairs")
        return State()
    path, meta = resume
    checkpoint.restore(path, parts.blocks, parts.trainer)
    saved = {name: (run_dir / "pairs" / name).read_bytes() for name in SPLIT_FILES
             if (run_dir / "pairs" / name).is_file()}
    scratch = run_dir / "pairs" / ".check"
    scratch.mkdir(exist_ok=True)
    try:
        now = _pair_lists(parts, scratch)
        if {k: now[k] for k in saved} != saved:
            raise UserError(f"{parts.cfg.data.root}: the images changed since the run started "
                            f"(its validation/test pairs differ); resuming would mix data sets")
    finally:
        for f in scratch.iterdir():
            f.unlink()
        scratch.rmdir()
    state = State(**meta["state"])
    truncate_log(run_dir / "log.jsonl", state.epoch)
    log.info("resuming from %s: epoch %d, batch %d", path, state.epoch + 1, state.batch)
    return state


def write_sharing_map(parts: Parts, run_dir: Path) -> dict:
    """Log the sharing map and write sharing.txt / sharing.json into the run directory."""
    uses, notes = model_uses(parts.net, getattr(parts, "decoder", None))
    report = sharing_map(uses, notes)
    text = format_sharing_map(report)
    write_text(run_dir / "sharing.txt", text + "\n")
    write_json(run_dir / "sharing.json", report)
    log.info("sharing map (%s):\n%s", parts.cfg.model.architecture, text)
    return report


def interrupted(signum: Optional[int], run_dir: Path, state: State) -> Interrupted:
    signum = signum or signal.SIGINT
    name = signal.Signals(signum).name
    return Interrupted(signum, f"{name}: stopped at epoch {state.epoch + 1}, batch "
                               f"{state.batch}; checkpoint written. Resume with: python "
                               f"train.py --resume {run_dir}")


def fit(cfg: Config, run_dir: Path, progress: bool = False, resume: Optional[tuple] = None):
    """Train (or continue), keep the best epoch by validation AUC, score test, export.

    Args:
        resume: (checkpoint path, its meta) to continue from, or None for a fresh run.
    Returns:
        The metrics written to metrics.json.
    Raises:
        Interrupted: SIGINT/SIGTERM, after a checkpoint was written.
        TrainingError: a non-finite step (the last checkpoint is kept).
    """
    if cfg.export.onnx:
        from .onnx_export import require_onnx

        require_onnx()  # before hours of training, not after
    write_text(run_dir / "config.yaml", to_yaml(cfg))
    parts = build(cfg, progress)
    write_sharing_map(parts, run_dir)
    state = start(parts, run_dir, resume)
    policy = NONFINITE[cfg.train.nonfinite](cfg.train.max_skipped_batches)
    with StopOnSignal() as stop:
        while state.epoch < cfg.train.epochs and not state.stopped_early:
            t0, first = time.perf_counter(), state.batch
            done = run_epoch(parts, state, stop, policy, progress)
            state.train_seconds += time.perf_counter() - t0
            if not done:
                save_checkpoints(parts, run_dir, state, improved=False)
                raise interrupted(stop.requested, run_dir, state)
            end_epoch(parts, run_dir, state, time.perf_counter() - t0,
                      parts.train_pairs.batches_per_epoch() - first)
            if stop.requested:
                raise interrupted(stop.requested, run_dir, state)
    log.info("final parameters sha256 %s", params_digest(parts.blocks))
    return finish(parts, run_dir, state)


def finish_unlabelled(parts: Parts, run_dir: Path, state: State) -> dict:
    """Reconstruction-only training on unlabelled images: no pairs, so no threshold and no
    export; the branch is used through model.pretrained = this run directory."""
    metrics = {"val": {"reconstruction": val_reconstruction(parts, "val")},
               "test": {"reconstruction": val_reconstruction(parts, "test")},
               "best_epoch": state.best["epoch"], "epochs_trained": state.epoch,
               "stopped_early": state.stopped_early, "train_seconds": state.train_seconds,
               "exported": False}
    write_json(run_dir / "metrics.json", metrics)
    log.info("no labelled pairs: nothing to threshold or export; start a similarity run from "
             "this one with --set model.pretrained=%s", run_dir)
    return metrics


def finish(parts: Parts, run_dir: Path, state: State) -> dict:
    """Load the best checkpoint, choose the threshold on validation, score test, export."""
    t0 = time.perf_counter()
    checkpoint.restore(run_dir / "checkpoints" / "best.ckpt", parts.blocks)
    if not has_pairs(parts):
        return finish_unlabelled(parts, run_dir, state)
    val, test, spec = validate_and_test(parts)
    sample = parts.data.images[parts.data.splits["test"][:16]]
    diff = export_run(parts.net, spec, parts.cfg.data, parts.cfg.model, sample,
                      run_dir / "export", parts.ctxs[0], onnx=parts.cfg.export.onnx)
    metrics = {"val": val, "test": test, "best_epoch": state.best["epoch"],
               "epochs_trained": state.epoch, "stopped_early": state.stopped_early,
               "train_seconds": state.train_seconds, "export_max_abs_diff": diff}
    write_json(run_dir / "metrics.json", metrics)
    log.info("evaluation and export took %.1fs", time.perf_counter() - t0)
    return metrics
