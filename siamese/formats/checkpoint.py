"""Checkpoints: one file holding parameters, optimizer state, epoch, progress and the config.

The file is an `.npz` (a zip of arrays, read with allow_pickle=False): parameters by structural
name (`model.` / `loss.` prefixes, stable across processes), the optimizer's per-parameter state
as named arrays (siamese.formats.optstate: never pickled), and a JSON `meta` record. It is
written to a temporary name in the same folder, flushed to disk, and renamed over the old one:
a crash leaves either the old or the new file.

Optimizer state is restored into the optimizer the config builds (learning rate, schedule),
never by unpickling a saved optimizer (docs/mxnet.md, "Optimizer state").
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict

import mxnet as mx
import numpy as np

from ..errors import UserError
from . import optstate
from .atomic import atomic_path


def named_params(blocks: Dict[str, mx.gluon.Block]) -> Dict[str, mx.gluon.Parameter]:
    """Parameters by structural name, e.g. `model.branch.features.0.weight`."""
    out = {}
    for prefix, block in blocks.items():
        for name, p in block._collect_params_with_prefix().items():
            out[f"{prefix}.{name}"] = p
    return out


def _optimizer_counts(opt: mx.optimizer.Optimizer) -> dict:
    return {
        "num_update": opt.num_update,
        "counts": {str(d): {str(i): c for i, c in v.items()}
                   for d, v in opt._all_index_update_counts.items()},
    }


def _set_optimizer_counts(opt: mx.optimizer.Optimizer, saved: dict) -> None:
    opt.num_update = saved["num_update"]
    opt._all_index_update_counts = {
        int(d): {int(i): c for i, c in v.items()} for d, v in saved["counts"].items()
    }
    opt._index_update_count = opt._all_index_update_counts.setdefault(0, {})


def save(path: Path, blocks: Dict[str, mx.gluon.Block], trainer: mx.gluon.Trainer,
         meta: dict) -> None:
    """Write a checkpoint atomically.

    Args:
        path: the final file name (e.g. `checkpoints/last.ckpt`).
        blocks: {"model": net, "loss": loss_block}.
        trainer: its optimizer state and update counts are saved.
        meta: JSON-serialisable progress (epoch, best, config, ...).
    """
    arrays = {f"param/{k}": p.data(p.list_ctx()[0]).asnumpy()
              for k, p in named_params(blocks).items()}
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    layout, states = optstate.flatten(trainer._updaters[0].states)
    arrays.update(states)
    meta = dict(meta, optimizer=dict(_optimizer_counts(trainer._optimizer), states=layout))
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, "write checkpoint", "the previous checkpoint is unchanged") as tmp, \
            open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())


def read(path: Path) -> tuple:
    """(meta, params by structural name, optimizer state) of a checkpoint file. The optimizer
    state is {array name: array} (see siamese.formats.optstate), or, for a checkpoint written
    before that format, the pickled bytes, not unpickled here.

    Raises:
        UserError: missing, truncated or corrupt file, naming it.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            params = {k[len("param/"):]: z[k] for k in z.files if k.startswith("param/")}
            if "optimizer_states" in z.files:
                states = z["optimizer_states"].tobytes()
            else:
                states = {k: z[k] for k in z.files if k.startswith(optstate.PREFIX)}
    except Exception as e:  # noqa: BLE001  any failure of numpy's reader on these bytes (the
        # gallery's fuzzing found tokenize.TokenError and TypeError) is the file's fault
        raise UserError(f"{path}: not a readable checkpoint ({type(e).__name__}: "
                        f"{str(e)[:100]})") from None
    _check_meta(meta, path)
    return meta, params, states


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _check_meta(meta, path: Path) -> None:
    """The meta record's shape: what resume and restore index into (found by fuzzing: a meta
    without `optimizer`, or with null or text where counts belong, failed deep in restore)."""
    opt = meta.get("optimizer") if isinstance(meta, dict) else None
    ok = isinstance(meta, dict) and _count(meta.get("epoch")) and _count(meta.get("batch", 0)) \
        and isinstance(meta.get("state"), dict) and isinstance(meta.get("config"), dict) \
        and isinstance(opt, dict) and _count(opt.get("num_update")) \
        and isinstance(opt.get("counts"), dict) and isinstance(opt.get("states", {}), dict) \
        and all(str(d).isdigit() and isinstance(v, dict) and all(
            str(i).isdigit() and _count(c) for i, c in v.items())
            for d, v in opt["counts"].items())
    if not ok:
        raise UserError(f"{path}: not a readable checkpoint (its meta record is damaged)")


def optimizer_states(path: Path, meta: dict, states) -> dict:
    """Updater.states of a checkpoint read by `read`, without a general unpickler."""
    if isinstance(states, bytes):
        return optstate.legacy_states(states, str(path))
    return optstate.unflatten(meta["optimizer"].get("states", {}), states, str(path))


def _check_states(path: Path, states: dict, params: list) -> None:
    """Each optimizer state belongs to a parameter and has its shape (else MXNet would fail at
    the first step of the resumed run, or train with garbage: found by fuzzing)."""
    def arrays(tree):
        if isinstance(tree, (list, tuple)):
            return [a for t in tree for a in arrays(t)]
        return [] if tree is None else [tree]

    for i, tree in states.items():
        if not 0 <= i < len(params) or any(
                tuple(a.shape) != tuple(params[i].shape) for a in arrays(tree)):
            raise UserError(f"{path}: optimizer state {i} does not fit the model's parameters")


def restore(path: Path, blocks: Dict[str, mx.gluon.Block],
            trainer: mx.gluon.Trainer | None = None) -> dict:
    """Load a checkpoint into built blocks (and the trainer's optimizer state); return meta.

    Raises:
        UserError: the file is unreadable, its parameters do not fit the built model, or its
            optimizer state is damaged or refused.
    """
    meta, arrays, states = read(path)
    params = named_params(blocks)
    missing = sorted(set(params) - set(arrays))
    extra = sorted(set(arrays) - set(params))
    if missing or extra:
        raise UserError(f"{path}: does not fit the configured model (missing "
                        f"{missing[:2]}, unexpected {extra[:2]})")
    for k, p in params.items():
        if tuple(p.shape) != arrays[k].shape or arrays[k].dtype != np.dtype(p.dtype):
            raise UserError(f"{path}: {k} has shape {arrays[k].shape} {arrays[k].dtype}, the "
                            f"model's {tuple(p.shape)} {np.dtype(p.dtype)}")
    opt = optimizer_states(path, meta, states) if trainer is not None else None
    if trainer is not None:
        _check_states(path, opt, trainer._params)
    for k, p in params.items():
        p.set_data(mx.nd.array(arrays[k], dtype=arrays[k].dtype))
    if trainer is not None:
        if not trainer._kv_initialized:
            trainer._init_kvstore()
        for k, updater in enumerate(trainer._updaters):
            updater.states = opt if k == 0 else optimizer_states(path, meta, states)
            updater.states_synced = dict.fromkeys(updater.states, False)
        _set_optimizer_counts(trainer._optimizer, meta["optimizer"])
    return meta
