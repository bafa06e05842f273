"""The training loop: epochs, checkpoints, resume, signals, non-finite steps.

A run can stop at any moment and continue: checkpoints are written by rename, hold the loop's
position (epoch and batch), and each epoch's pairs come from a generator seeded by the epoch, so
a resumed run replays the same draws and ends with the figures of an uninterrupted one. The
loop ends with the best epoch's weights loaded; choosing the threshold, scoring the test pairs
and exporting are the caller's (siamese.commands.pipeline).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import time
from pathlib import Path
from typing import Optional

import mxnet as mx

from ..config import Config, to_dict, to_yaml
from ..errors import Interrupted, UserError
from ..formats import checkpoint
from ..formats.atomic import append_jsonl, write_json, write_text
from ..formats.pairsets import (
    first_change,
    image_digests,
    read_digests,
    write_digests,
    write_pairs_csv,
    write_split_csv,
)
from ..formats.rundir import SPLIT_FILES, RunDir
from ..models.sharing import format_sharing_map, sharing_map, with_decoder
from .board import Board, open_board
from .curves import try_plot_curves
from .distributed import params_digest
from .engine import Parts, build
from .resume import read_log, truncate_log
from .select import check_select, judge
from .signals import StopOnSignal
from .state import NONFINITE, State
from .step import NonFiniteStep
from .validation import comparator, reconstruction_error, validate

log = logging.getLogger(__name__)


def run_epoch(parts: Parts, state: State, stop: StopOnSignal, policy, progress: bool) -> bool:
    """Train from `state.batch` to the end of epoch `state.epoch`; False if a signal stopped it.

    Batches before `state.batch` are drawn and discarded, so their random draws are replayed.
    """
    tp, cfg = parts.batches, parts.cfg.train
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
        try:
            loss = parts.step(batch, images, state.parts_sum)
            state.loss_sum += loss
            parts.board.step(state.epoch * n + k + 1, loss / parts.examples_per_step)
        except NonFiniteStep as e:
            policy.handle(parts, state, f"epoch {state.epoch + 1}, batch {k + 1}", e)
        state.batch = k + 1
        if parts.collective.stop_signal(stop):
            return False
    mx.nd.waitall()
    return True


def _f4(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def save_checkpoints(parts: Parts, run: RunDir, state: State, improved: bool) -> Path:
    """best (if improved), then the epoch file (at epoch ends), then last; old epochs pruned."""
    meta = {"epoch": state.epoch, "batch": state.batch, "state": dataclasses.asdict(state),
            "config": to_dict(parts.cfg), "workers": parts.workers, "classes": parts.classes}
    if improved:
        checkpoint.save(run.checkpoint("best"), parts.blocks, parts.trainer, meta)
    if state.batch == 0:
        checkpoint.save(run.checkpoint(state.epoch), parts.blocks, parts.trainer, meta)
        for old in run.epoch_checkpoints()[:-parts.cfg.train.keep_checkpoints]:
            old.unlink(missing_ok=True)
    checkpoint.save(run.checkpoint("last"), parts.blocks, parts.trainer, meta)
    return run.checkpoint("last")


def end_epoch(parts: Parts, run: RunDir, state: State, seconds: float, trained: int) -> None:
    """Validate, update best, checkpoint and log a finished epoch."""
    parts.collective.average_stats(parts.blocks)  # every worker validates the same model
    val = validate(parts)
    tp = parts.batches
    examples = tp.batches_per_epoch() * tp.batch_size
    row = {"epoch": state.epoch + 1, "train_loss": state.loss_sum / examples,
           "val_auc": val["auc"], "val_eer": val["eer"], "val_accuracy": val["accuracy"],
           "examples_per_s": trained * tp.batch_size / max(seconds, 1e-9), "unit": tp.unit,
           "lr": parts.trainer.learning_rate, "seconds": seconds}
    if parts.autoencoder is not None:
        row.update({f"train_{k}": v / examples for k, v in state.parts_sum.items()},
                   val_reconstruction=reconstruction_error(parts, "val"))
    improved = judge(parts, state, val, row)  # train.select
    state.epoch, state.batch, state.loss_sum, state.parts_sum = state.epoch + 1, 0, 0.0, {}
    if improved:
        state.best = {"epoch": state.epoch, "auc": val["auc"], "eer": val["eer"],
                      "reconstruction": row.get("val_reconstruction", float("inf")),
                      "nway": row.get("val_nway", -1.0)}
    patience = parts.cfg.train.patience
    if parts.collective.any(bool(patience) and state.epoch < parts.cfg.train.epochs and
                            state.epoch - state.best["epoch"] >= patience):
        state.stopped_early = True
        row["early_stop"] = True
    # The log line first: a crash before the checkpoint only makes the resumed run cut it and
    # redo the epoch; the other order could lose the line of an epoch the checkpoint holds.
    append_jsonl(run.log, row)
    parts.board.epoch(row)
    save_checkpoints(parts, run, state, improved)
    try_plot_curves(run.curves, read_log(run.log), state.best["epoch"])
    log.info("epoch %d/%d  loss %.4f  val auc %s eer %s acc %s%s  %.0f %s/s  lr %.2g  "
             "%.1fs%s", state.epoch, parts.cfg.train.epochs, row["train_loss"],
             *(_f4(val[k]) for k in ("auc", "eer", "accuracy")),
             f" n-way {row['val_nway']:.4f}" if "val_nway" in row else "",
             row["examples_per_s"], tp.unit, row["lr"], seconds, "  *best" if improved else "")
    if parts.autoencoder is not None:
        log.info("  similarity %.4f  reconstruction %.4f (x %g)  val reconstruction %.4f",
                 row.get("train_similarity", 0.0), row["train_reconstruction"],
                 parts.cfg.loss.reconstruction_weight, row["val_reconstruction"])
    if state.stopped_early:
        log.info("early stop after epoch %d: no better validation AUC for %d epochs "
                 "(train.patience); the best epoch is %d", state.epoch, patience,
                 state.best["epoch"])


def _pair_lists(parts: Parts, folder: Path) -> dict:
    """Write val.csv, test.csv and split.csv (every image's split) into `folder`; their bytes."""
    data = parts.data
    for split in ("val", "test"):
        write_pairs_csv(folder / f"{split}.csv", data.folder.paths, data.pairs[split])
    write_split_csv(folder / "split.csv", data.folder.paths, data.folder.labels,
                    data.folder.classes, data.splits)
    return {name: (folder / name).read_bytes() for name in SPLIT_FILES}


def start(parts: Parts, run: RunDir, resume: Optional[tuple]) -> State:
    """A fresh state, or the checkpoint's (parameters and optimizer restored, data checked)."""
    data = parts.data
    digests = dict(zip(data.folder.paths, data.digests if data.digests is not None
                       else image_digests(data.images)))
    if data.storage is not None:
        write_json(run.storage, data.storage)
    if resume is None:
        _pair_lists(parts, run.pairs)
        write_digests(run.digest_file, list(digests), list(digests.values()))
        return State()
    path, meta = resume
    changed = first_change(read_digests(run.digest_file), digests) \
        if run.digest_file.is_file() else None
    if changed is not None:
        raise UserError(f"{Path(parts.cfg.data.root) / changed}: changed since the run started "
                        f"(added, removed or other pixels); resuming would mix data sets")
    checkpoint.restore(path, parts.blocks, parts.trainer)
    _check_pair_lists(parts, run)
    state = State(**meta["state"])
    truncate_log(run.log, state.epoch)
    log.info("resuming from %s: epoch %d, batch %d", path, state.epoch + 1, state.batch)
    return state


def _check_pair_lists(parts: Parts, run: RunDir) -> None:
    """The run's val/test pairs, drawn again from today's folder, must be the saved ones."""
    saved = {name: (run.pairs / name).read_bytes() for name in SPLIT_FILES
             if (run.pairs / name).is_file()}
    scratch = run.pairs / ".check"
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


def write_sharing_map(parts: Parts, run: RunDir) -> dict:
    """Log the sharing map and write sharing.txt / sharing.json into the run directory."""
    uses, notes = with_decoder(parts.arch.sharing_uses(parts.net), parts.decoder)
    report = sharing_map(uses, notes)
    text = format_sharing_map(report)
    write_text(run.sharing_txt, text + "\n")
    write_json(run.sharing_json, report)
    log.info("sharing map (%s):\n%s", parts.cfg.model.architecture, text)
    return report


def interrupted_error(signum: Optional[int], run: RunDir, state: State) -> Interrupted:
    """The Interrupted to raise after a signal stopped the loop (its checkpoint written)."""
    signum = signum or signal.SIGINT
    name = signal.Signals(signum).name
    return Interrupted(signum, f"{name}: stopped at epoch {state.epoch + 1}, batch "
                               f"{state.batch}; checkpoint written. Resume with: python "
                               f"train.py --resume {run}")


def fit(cfg: Config, run: RunDir, progress: bool = False,
        resume: Optional[tuple] = None) -> tuple:
    """Train (or continue); keep the best epoch (train.select: validation AUC, N-way accuracy,
    or the last) and end with its weights.

    Args:
        run: the run directory (config.yaml, log, checkpoints, pairs are written there).
        resume: (checkpoint path, its meta) to continue from, or None for a fresh run.
    Returns:
        (Parts with the best checkpoint's weights loaded, the final State).
    Raises:
        Interrupted: SIGINT/SIGTERM, after a checkpoint was written.
        TrainingError: a non-finite step (the last checkpoint is kept).
    """
    write_text(run.config, to_yaml(cfg))
    parts = build(cfg, progress, open_board(cfg.log.tensorboard, run.tensorboard,
                                            cfg.log.tensorboard_every))
    check_select(parts)  # train.select: nway:N can be scored on the validation split
    write_sharing_map(parts, run)
    state = start(parts, run, resume)
    policy = NONFINITE[cfg.train.nonfinite](cfg.train.max_skipped_batches)
    with parts.stop as stop, contextlib.closing(parts.batches):  # data.workers
        while state.epoch < cfg.train.epochs and not state.stopped_early:
            t0, first = time.perf_counter(), state.batch
            done = run_epoch(parts, state, stop, policy, progress)
            state.train_seconds += time.perf_counter() - t0
            if not done:
                save_checkpoints(parts, run, state, improved=False)
                raise interrupted_error(parts.collective.stop_signal(stop), run, state)
            end_epoch(parts, run, state, time.perf_counter() - t0,
                      parts.batches.batches_per_epoch() - first)
            if parts.collective.stop_signal(stop):
                raise interrupted_error(parts.collective.stop_signal(stop), run, state)
    log.info("final parameters sha256 %s", params_digest(parts.blocks))
    checkpoint.restore(run.checkpoint("best"), parts.blocks)
    fill_projector(parts)
    parts.board.close()
    return parts, state


def fill_projector(parts: Parts, limit: int = 1000) -> None:
    """The best model's embeddings of (up to `limit`) validation images, with their classes and
    a sprite, for TensorBoard's projector (nothing without log.tensorboard)."""
    index = parts.data.splits["val"][:limit]
    if isinstance(parts.board, Board) and len(index) and parts.arch.embeds:
        images = parts.data.images[index]
        emb = comparator(parts).embed_side(images, "left")
        names = [parts.data.folder.classes[c] for c in parts.data.folder.labels[index]]
        parts.board.embeddings(emb, names, images)
