"""Export the branch alone as MXNet symbol + params with a `model.json`, verified by reloading.

Layout of an export directory:
    branch-symbol.json   the hybridized branch graph, one input named `data` (N, C, H, W)
    branch-0000.params   its parameters (global names: read with SymbolBlock.imports only)
    model.json           preprocessing, embedding size, score (distance/head) and threshold

The files are written into a temporary sibling folder, verified, and only then swapped in, so
a failed export leaves the previous one intact.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import gluon

from . import __version__
from .errors import UserError
from .images import to_tensor

log = logging.getLogger(__name__)

SYMBOL, PARAMS, META = "branch-symbol.json", "branch-0000.params", "model.json"
TOLERANCE = 1e-5  # largest allowed |embedding difference| between trained and reloaded branch


def model_meta(data_cfg, model_cfg, score: dict) -> dict:
    """The `model.json` record: how to preprocess an image and how to score two embeddings."""
    h, w = data_cfg.image_size
    c = data_cfg.channels
    return {
        "format": "siamese-export/1",
        "input": {"name": "data", "layout": "NCHW", "shape": [-1, c, h, w], "dtype": "float32"},
        "preprocess": {
            "color": {1: "L", 3: "RGB"}[c],
            "resize": [h, w],
            "resample": "bilinear",
            "scale": 1.0 / 255.0,
            "mean": [float(m) for m in np.broadcast_to(data_cfg.mean, c)],
            "std": [float(s) for s in np.broadcast_to(data_cfg.std, c)],
            "formula": "x = (pixel * scale - mean) / std, HWC -> CHW",
        },
        "branch": model_cfg.branch,
        "embedding_size": model_cfg.embedding_size,
        "normalized": model_cfg.normalize,
        "score": score,
        "files": {"symbol": SYMBOL, "params": PARAMS},
        "versions": {"siamese": __version__, "mxnet": mx.__version__, "numpy": np.__version__},
    }


def load_branch(export_dir: Path, ctx: mx.Context = mx.cpu()) -> gluon.SymbolBlock:
    """The exported branch as a SymbolBlock (one input `data`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gluon.SymbolBlock.imports(str(export_dir / SYMBOL), ["data"],
                                         str(export_dir / PARAMS), ctx=ctx)


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace `out` by `tmp` with renames only; the old export is removed last."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def export_branch(branch: gluon.HybridBlock, out: Path, meta: dict, images: np.ndarray,
                  ctx: mx.Context, tolerance: float = TOLERANCE) -> float:
    """Export, reload with SymbolBlock.imports, compare embeddings, then swap in atomically.

    Args:
        branch: the trained branch, hybridized.
        out: the export directory to create or replace.
        meta: the model.json record (see model_meta).
        images: uint8 (N, H, W, C) real images to verify with (N >= 1).
        tolerance: largest allowed absolute embedding difference.
    Returns:
        The largest absolute difference seen.
    Raises:
        UserError: the reloaded branch disagrees beyond `tolerance` (nothing is left behind).
    """
    pre = meta["preprocess"]
    x = mx.nd.array(to_tensor(images, pre["mean"], pre["std"]), ctx=ctx)
    expected = branch(x).asnumpy()  # also builds the cached graph export needs
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        branch.export(str(tmp / "branch"))
        got = load_branch(tmp, ctx)(x).asnumpy()
        diff = float(np.abs(got - expected).max())
        if not diff <= tolerance:
            raise UserError(f"{out}: exported branch differs from the trained one by {diff:.3g} "
                            f"(tolerance {tolerance:g}); export removed")
        meta = dict(meta, verified={"max_abs_diff": diff, "tolerance": tolerance,
                                    "images": int(len(images))})
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n")
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %s (reloaded and compared on %d images: max |diff| %.2g)",
             out, len(images), diff)
    return diff


def read_meta(export_dir: Path) -> dict:
    """model.json of an export directory, checked for the files it names."""
    path = Path(export_dir) / META
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read export metadata ({e})") from None
    for name in (SYMBOL, PARAMS):
        if not (Path(export_dir) / name).is_file():
            raise UserError(f"{Path(export_dir) / name}: missing from the export")
    return meta
