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
from .errors import ExportMismatch, UserError
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
        "distance": score["name"],  # euclidean | cosine (lower = same) | logistic (higher)
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
                  ctx: mx.Context, onnx: bool = False, tolerance: float = TOLERANCE) -> dict:
    """Export, reload, compare embeddings, then swap the new files in atomically.

    Args:
        branch: the trained branch, hybridized.
        out: the export directory to create or replace.
        meta: the model.json record (see model_meta).
        images: uint8 (N, H, W, C) real images to verify with (N >= 1).
        onnx: also write branch.onnx and check it with onnxruntime.
        tolerance: largest allowed absolute embedding difference.
    Returns:
        {"symbol": largest |difference|, "onnx": ... when written}.
    Raises:
        ExportMismatch: a reloaded file disagrees beyond `tolerance` (nothing is left behind).
    """
    pre = meta["preprocess"]
    x = to_tensor(images, pre["mean"], pre["std"])  # (N, C, H, W) float32
    expected = branch(mx.nd.array(x, ctx=ctx)).asnumpy()  # also builds the graph export needs
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    diffs = {}
    try:
        branch.export(str(tmp / "branch"))
        diffs["symbol"] = _diff(load_branch(tmp, ctx)(mx.nd.array(x, ctx=ctx)).asnumpy(),
                                expected, out, "symbol", tolerance)
        files = {"symbol": SYMBOL, "params": PARAMS}
        if onnx:
            from .onnx_export import ONNX_FILE, export_onnx, onnx_embed

            export_onnx(tmp / SYMBOL, tmp / PARAMS, x.shape[1:], tmp / ONNX_FILE)
            diffs["onnx"] = _diff(onnx_embed(tmp / ONNX_FILE, x), expected, out, "ONNX",
                                  tolerance)
            files["onnx"] = ONNX_FILE
        meta = dict(meta, files=files, verified={"max_abs_diff": diffs, "tolerance": tolerance,
                                                 "images": int(len(images))})
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n")
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %s (reloaded and compared on %d images: max |diff| %s)", out,
             len(images), ", ".join(f"{k} {v:.2g}" for k, v in diffs.items()))
    return diffs


def _diff(got: np.ndarray, expected: np.ndarray, out: Path, what: str, tol: float) -> float:
    diff = float(np.abs(got - expected).max())
    if not diff <= tol:
        raise ExportMismatch(f"{out}: the reloaded {what} export differs from the trained "
                             f"branch by {diff:.3g} (tolerance {tol:g}); export removed")
    return diff


def export_run(branch, score: dict, data_cfg, model_cfg, images: np.ndarray, out: Path,
               ctx: mx.Context, onnx: bool = False) -> dict:
    """The one export path of training and `python -m siamese.export`: metadata + files."""
    return export_branch(branch, out, model_meta(data_cfg, model_cfg, score), images, ctx, onnx)


def _check_meta(meta: dict, path: Path) -> None:
    """model.json must say how to preprocess and how to score, consistently."""
    try:
        c = meta["input"]["shape"][1]
        pre, score = meta["preprocess"], meta["score"]
        ok = (len(meta["input"]["shape"]) == 4 and pre["color"] == {1: "L", 3: "RGB"}[c]
              and len(pre["resize"]) == 2 and len(pre["mean"]) == len(pre["std"]) == c
              and isinstance(score["threshold"], (int, float))
              and isinstance(score["higher_is_similar"], bool) and score["name"])
        if score["name"] == "logistic":
            ok = ok and len(score["weights"]) == meta["embedding_size"]
    except (KeyError, TypeError, IndexError):
        ok = False
    if not ok:
        raise UserError(f"{path}: incomplete or inconsistent export metadata (input, "
                        f"preprocess and score must agree)")


def read_meta(export_dir: Path) -> dict:
    """model.json of an export directory, checked, and the files it names present."""
    export_dir = Path(export_dir)
    path = export_dir / META
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read export metadata ({e})") from None
    if not isinstance(meta, dict):
        raise UserError(f"{path}: export metadata is not a JSON object")
    _check_meta(meta, path)
    for name in dict(meta.get("files", {}), symbol=SYMBOL, params=PARAMS).values():
        if not (export_dir / name).is_file():
            raise UserError(f"{export_dir / name}: missing from the export")
    return meta


def open_export(export_dir: Path, ctx: mx.Context = mx.cpu()) -> tuple:
    """(SymbolBlock, model.json) of an export directory; damaged files are UserErrors."""
    meta = read_meta(export_dir)
    try:
        block = load_branch(Path(export_dir), ctx)
        c, h, w = meta["input"]["shape"][1:]
        out = block(mx.nd.zeros((1, c, h, w), ctx=ctx)).asnumpy()
    except (mx.base.MXNetError, ValueError, AssertionError) as e:
        last = str(e).strip().splitlines()[-1][:160] if str(e).strip() else type(e).__name__
        raise UserError(f"{export_dir}: the exported symbol or parameters do not load ({last})") \
            from None
    if out.shape[-1] != meta["embedding_size"]:
        raise UserError(f"{export_dir}: the network gives {out.shape[-1]} values, model.json "
                        f"says embedding_size {meta['embedding_size']}")
    return block, meta


if __name__ == "__main__":
    import sys

    from .export_cli import main

    sys.exit(main())
