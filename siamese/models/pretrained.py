"""Local pretrained weights for a built branch: a .params file of the same network, or a run
directory / checkpoint of this tool (`model.pretrained`). Nothing is ever downloaded."""

from __future__ import annotations

import logging
from pathlib import Path

import mxnet as mx
from mxnet.gluon import HybridBlock

from ..errors import UserError
from ..formats import checkpoint
from ..formats.ndfile import check_params_file
from ..formats.rundir import RunDir

log = logging.getLogger(__name__)


def load_pretrained(branch: HybridBlock, path: str) -> None:
    """Load local weights (a .params file of the same zoo network) into a built branch.

    Parameters whose name and shape match are loaded; the classifier (now the embedding layer,
    of another shape) keeps its initialisation. Fewer than half matching is an error.
    """
    file = Path(path).expanduser()
    if file.is_dir():  # a run directory of this tool: its best checkpoint
        file = RunDir(file).checkpoint("best")
    if not file.is_file():
        raise UserError(f"model.pretrained: no such file: {file}")
    if file.suffix == ".ckpt":
        saved = run_branch_params(file)
    else:
        try:
            check_params_file(file)  # a damaged file would hang mx.nd.load
            saved = mx.nd.load(str(file))
        except (mx.base.MXNetError, UserError):
            raise UserError(f"model.pretrained: {file}: not an MXNet .params file") from None
        if not isinstance(saved, dict):
            raise UserError(f"model.pretrained: {file}: its arrays have no names to match")
        saved = {k.split(":", 1)[-1]: v for k, v in saved.items()}
    params = branch._collect_params_with_prefix()
    loaded = 0
    for name, p in params.items():
        for key in (name, name.split(".", 1)[-1]):  # with or without our "net." wrapper
            if key in saved and tuple(saved[key].shape) == tuple(p.shape):
                p.set_data(saved[key])
                loaded += 1
                break
    if loaded < len(params) / 2:
        raise UserError(f"model.pretrained: {file}: only {loaded} of {len(params)} parameters "
                        f"match this network by name and shape")
    log.info("loaded %d of %d parameters from %s", loaded, len(params), file)


def run_branch_params(file: Path) -> dict:
    """The branch parameters of one of this tool's checkpoints, by structural name (the
    `model.branch.` prefix removed); a decoder's or loss head's parameters are not taken."""
    _, params, _ = checkpoint.read(file)
    prefix = "model.branch."
    out = {k[len(prefix):]: mx.nd.array(v) for k, v in params.items() if k.startswith(prefix)}
    if not out:
        raise UserError(f"model.pretrained: {file}: a checkpoint without a siamese branch "
                        f"(model.architecture: siamese)")
    return out
