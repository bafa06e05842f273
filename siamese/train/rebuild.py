"""A run's network back from one of its checkpoints: the config saved inside it, the blocks
built as training built them, the weights restored. The one place this is done (the export
command and anything else that needs a trained network without its export)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import mxnet as mx

from ..config import Config, from_dict
from ..errors import UserError
from ..formats import checkpoint
from ..formats.rundir import RunDir
from .engine import build_blocks


def checkpoint_config(path: Path, meta: dict) -> Config:
    """The validated config stored in a checkpoint's meta; UserError naming the file."""
    try:
        return from_dict(meta["config"])
    except (UserError, KeyError) as e:
        raise UserError(f"{path}: the config saved in it is not valid ({e})") from None


def load_run(run_dir: Path, which: str = "best",
             ctxs: Optional[List[mx.Context]] = None) -> tuple:
    """(config, net, loss) rebuilt from `checkpoints/<which>.ckpt` of a run directory.

    A decoder (model.decoder) is rebuilt and restored too, so the checkpoint fits, but not
    returned: it is never exported.
    """
    path = RunDir(run_dir).checkpoint(which)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint (is {run_dir} a run directory?)")
    meta, _, _ = checkpoint.read(path)
    cfg = checkpoint_config(path, meta)
    net, loss, autoencoder = build_blocks(cfg, ctxs or [mx.cpu()], meta.get("classes", 0))
    blocks = {"model": net, "loss": loss}
    if autoencoder is not None:
        blocks["decoder"] = autoencoder.decoder
    checkpoint.restore(path, blocks)
    return cfg, net, loss
