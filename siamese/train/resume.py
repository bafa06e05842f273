"""Resuming a run: the newest readable checkpoint, the saved config, what may change."""

from __future__ import annotations

import copy
import json
import logging
import math
import shutil
from dataclasses import MISSING, fields
from pathlib import Path
from typing import List, Optional

from ..config import Config, apply_overrides, from_dict, load_config, to_dict
from ..errors import UserError
from ..formats import checkpoint
from ..formats.atomic import write_text
from ..formats.rundir import RunDir
from .state import State

log = logging.getLogger(__name__)

# Keys a resumed run may change: they alter how long or how fast it trains, not what it is.
SAFE_KEYS = ("train.epochs", "train.lr", "train.eval_batch_size", "train.keep_checkpoints",
             "train.nonfinite", "train.max_skipped_batches", "train.patience", "export.onnx",
             "eval.threshold", "log.tensorboard", "log.tensorboard_every")


def candidates(run_dir: Path) -> List[Path]:
    run = RunDir(run_dir)
    return [run.checkpoint("last")] + run.epoch_checkpoints()[::-1]


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_state(meta: dict, path: Path) -> None:
    """The loop's saved State: its fields with their types, at the checkpoint's epoch and batch
    (found by fuzzing: an edited state resumed with text counters or another epoch)."""
    state = meta["state"]
    defaults = {f.name: f.default for f in fields(State) if f.default is not MISSING}
    best = state.get("best", {})
    ok = set(state) <= {f.name for f in fields(State)} \
        and all(isinstance(state[k], type(v)) if isinstance(v, bool) else
                (_number(state[k]) if isinstance(v, float) else
                 isinstance(state[k], int) and not isinstance(state[k], bool))
                for k, v in defaults.items() if k in state) \
        and state.get("epoch", 0) == meta["epoch"] \
        and state.get("batch", 0) == meta.get("batch", 0) \
        and isinstance(best, dict) and all(_number(v) for v in best.values()) \
        and isinstance(state.get("parts_sum", {}), dict) \
        and all(_number(v) for v in state.get("parts_sum", {}).values())
    if not ok:
        raise UserError(f"{path}: not a readable checkpoint (its saved training state is "
                        f"damaged)")


def newest_checkpoint(run_dir: Path) -> tuple:
    """(path, meta) of the most advanced readable checkpoint; unreadable ones are reported.

    Raises:
        UserError: no readable checkpoint, naming the files tried.
    """
    good, bad = [], []
    for path in candidates(run_dir):
        if not path.exists():
            continue
        try:
            meta, _, _ = checkpoint.read(path)
            check_state(meta, path)
            good.append(((meta["epoch"], meta.get("batch", 0)), path, meta))
        except (UserError, KeyError) as e:
            bad.append(path)
            log.warning("%s", e)
    if not good:
        tried = ", ".join(str(p) for p in bad) or f"none in {RunDir(run_dir).checkpoints}"
        raise UserError(f"{run_dir}: no readable checkpoint to resume from (tried: {tried})")
    good.sort(key=lambda g: g[0], reverse=True)
    _, path, meta = good[0]
    if bad:
        log.warning("resuming from %s, the newest readable checkpoint, instead of %s",
                    path, ", ".join(str(b) for b in bad))
    return path, meta


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def resume_config(saved: dict, overrides: List[str], given: Optional[Config]) -> Config:
    """The saved config with safe `--set` overrides; anything else that differs is refused.

    Args:
        saved: the config stored in the checkpoint.
        overrides: `key=value` strings from `--set`.
        given: the config file named on the command line, if any (must agree on unsafe keys).
    """
    flat_saved = _flat(saved)
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        same = flat_saved.get(key) == _flat(apply_overrides({}, [item])).get(key)
        if key not in SAFE_KEYS and not same:
            raise UserError(f"--set {key}: cannot change when resuming (it would change the "
                            f"model, data or loss); safe keys: {', '.join(SAFE_KEYS)}")
    cfg = from_dict(apply_overrides(copy.deepcopy(saved), list(overrides)))
    if given is not None:
        mine, theirs = _flat(saved), _flat(to_dict(given))
        for key, value in theirs.items():
            if key not in SAFE_KEYS and mine.get(key) != value:
                raise UserError(f"{key}: the config file says {value!r}, the run was started "
                                f"with {mine.get(key)!r}; resume uses the run's own config "
                                f"(omit the config file or make them agree)")
    return cfg


def _parsed(path: Path) -> List[tuple]:
    """(line, row) of each line of log.jsonl that parses to an object; a line a crash tore in
    the middle of its write is skipped with a warning."""
    out = []
    try:
        raw = path.read_bytes().splitlines() if path.exists() else []
    except OSError as e:
        raise UserError(f"{path}: cannot read the run's log ({e.strerror or e})") from None
    for n, data in enumerate(raw, start=1):
        # A line that is not UTF-8 or nests too deeply is as torn as one cut short (fuzzing
        # found both: UnicodeDecodeError and RecursionError used to escape).
        try:
            line = data.decode()
            row = json.loads(line) if line.strip() else None
        except (ValueError, RecursionError):
            log.warning("%s: line %d is torn (a write cut short); dropped", path, n)
            continue
        if isinstance(row, dict):
            out.append((line, row))
    return out


def _epoch(row: dict) -> float:
    """A row's epoch; infinity for a row without a numeric one (dropped by a cut; a row of
    another type made a cut fail: found by fuzzing)."""
    e = row.get("epoch")
    return e if isinstance(e, (int, float)) and not isinstance(e, bool) and e == e else math.inf


def truncate_log(path: Path, epoch: int) -> None:
    """Keep the log lines of epochs up to `epoch` (those the checkpoint has seen). A torn line
    is dropped, not a failure."""
    if path.exists():
        rows = [line for line, row in _parsed(path) if _epoch(row) <= epoch]
        write_text(path, "".join(r + "\n" for r in rows))


def read_log(path: Path) -> List[dict]:
    """The rows of log.jsonl that parse (a torn line is skipped)."""
    return [row for _, row in _parsed(path)]


def remove_stale(run: RunDir) -> None:
    """Remove the temporary files killed writes left in a run directory (never anything
    else: only names siamese.formats.atomic gives its temporaries)."""
    for path in run.stale_temporaries():
        log.info("removing %s, left by an interrupted write", path)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def plan_resume(run_dir: Path, config: Optional[str], overrides: List[str]) -> tuple:
    """(config, run directory, (checkpoint, meta) or None) for `train.py --resume RUN_DIR`.

    A run killed before its first checkpoint has nothing to continue from: it starts again from
    the beginning (resume None) with its saved config.yaml, or, when it was killed before even
    that was saved, with the config file given on the command line.

    Raises:
        UserError: not a run directory, no readable checkpoint, an unsafe change, or a run
            that already finished its epochs.
    """
    run = RunDir(run_dir)
    if not run.is_run():
        fresh = run.never_started() or not run.root.exists()
        if config and fresh:
            log.warning("%s: stopped before it saved its config; starting it from the "
                        "beginning with %s", run, config)
            return load_config(config, overrides), run, None
        if not run.root.exists():
            raise UserError(f"{run}: no such run directory")
        hint = (f"; it was stopped before it saved its config: start it with python train.py "
                f"CONFIG --resume {run}") if fresh else ""
        raise UserError(f"{run}: not a run directory (no config.yaml){hint}")
    remove_stale(run)
    given = load_config(config, overrides) if config else None  # as the command line says
    if not run.has_checkpoint():
        if run.metrics.exists():  # finished, its checkpoints deleted: never wipe its export
            raise UserError(f"{run}: a finished run without checkpoints; nothing to continue "
                            f"from (start a new run with --set model.pretrained={run})")
        cfg = resume_config(to_dict(load_config(run.config)), overrides, given)
        log.warning("%s: no checkpoint yet (stopped before the first one); starting it again "
                    "from the beginning with its saved config", run)
        return cfg, run, None
    path, meta = newest_checkpoint(run.root)
    try:
        cfg = resume_config(meta["config"], overrides, given)
    except UserError as e:
        raise UserError(f"{path}: {e}" if str(path) not in str(e) else str(e)) from None
    stopped = meta["state"].get("stopped_early")
    if (meta["epoch"] >= cfg.train.epochs or stopped) and run.metrics.exists():
        raise UserError(f"{run}: already finished {meta['epoch']} epochs"
                        f"{' (stopped early)' if stopped else ''}; "
                        f"pass --set train.epochs=N with a larger N to train further")
    return cfg, run, (path, meta)


def check_workers(meta: dict, workers: int, path: Path) -> None:
    """A run resumes with as many workers as it was trained with (each worker's shard of the
    pairs depends on it)."""
    saved = meta.get("workers", 1)
    if saved != workers:
        raise UserError(f"{path}: the run was trained by {saved} worker(s); resume it with "
                        f"{saved} (python -m siamese.launch --workers {saved} ...), not "
                        f"{workers}")
