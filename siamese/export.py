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
from typing import Dict, List

import mxnet as mx
import numpy as np
from mxnet import gluon

from . import __version__
from .errors import ExportMismatch, UserError
from .images import to_tensor

log = logging.getLogger(__name__)

SYMBOL, PARAMS, META = "branch-symbol.json", "branch-0000.params", "model.json"
TOLERANCE = 1e-5  # largest allowed |embedding difference| between trained and reloaded branch


KIND_INPUTS = {"branch": ["data"], "two_branches": ["data"], "pair_scorer": ["left", "right"]}
KIND_FILES = {"branch": ["symbol", "params"], "pair_scorer": ["symbol", "params"],
              "two_branches": ["left_symbol", "left_params", "right_symbol", "right_params"]}
KIND_WORDS = {"branch": "one branch for both images (siamese): embed each image, then score "
                        "the two embeddings",
              "two_branches": "two branches (pseudo-siamese): embed the left image with left-*, "
                              "the right image with right-*, then score the two embeddings",
              "pair_scorer": "a pair scorer (two-channel): inputs left and right, output the "
                             "probability that they show the same thing"}


def model_meta(data_cfg, model_cfg, score: dict) -> dict:
    """The `model.json` record: what the export is, how to preprocess an image and how to
    score a pair."""
    from .comparator import ARCHITECTURE_KIND

    h, w = data_cfg.image_size
    c = data_cfg.channels
    kind = ARCHITECTURE_KIND[model_cfg.architecture]
    return {
        "format": "siamese-export/1",
        "architecture": model_cfg.architecture,
        "kind": kind,
        "what": KIND_WORDS[kind],
        "input": {"name": "data", "names": KIND_INPUTS[kind], "layout": "NCHW",
                  "shape": [-1, c, h, w], "dtype": "float32"},
        "preprocess": {
            "color": {1: "L", 3: "RGB"}[c],
            "resize": [h, w],
            "resample": "bilinear",
            "scale": 1.0 / 255.0,
            "mean": [float(m) for m in np.broadcast_to(data_cfg.mean, c)],
            "std": [float(s) for s in np.broadcast_to(data_cfg.std, c)],
            "formula": "x = (pixel * scale - mean) / std, HWC -> CHW",
            "right_view": data_cfg.right_view,
        },
        "branch": model_cfg.branch,
        "embedding_size": model_cfg.embedding_size,
        "normalized": model_cfg.normalize,
        "distance": score["name"],  # euclidean | cosine (lower = same) | logistic (higher)
        "score": score,
        "files": {},  # filled in by export_model
        "versions": {"siamese": __version__, "mxnet": mx.__version__, "numpy": np.__version__},
    }


def load_branch(export_dir: Path, ctx: mx.Context = mx.cpu()) -> gluon.SymbolBlock:
    """The exported siamese branch as a SymbolBlock (one input `data`)."""
    return load_symbol(Path(export_dir), "branch", ["data"], ctx)


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace `out` by `tmp` with renames only; the old export is removed last."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def save_symbol(block: gluon.HybridBlock, inputs: List[str], prefix: Path) -> None:
    """Write `prefix-symbol.json` and `prefix-0000.params` of `block` called on symbols with
    these input names (HybridBlock.export names a single input `data`, several `data0`...)."""
    out = block(*[mx.sym.var(n) for n in inputs])
    out.save(f"{prefix}-symbol.json")
    by_name = {p.name: p for p in block.collect_params().values()}
    arrays = {f"arg:{n}": by_name[n]._reduce() for n in out.list_arguments() if n in by_name}
    arrays.update({f"aux:{n}": by_name[n]._reduce() for n in out.list_auxiliary_states()})
    mx.nd.save(f"{prefix}-0000.params", arrays)


def load_symbol(export_dir: Path, role: str, inputs: List[str],
                ctx: mx.Context = mx.cpu()) -> gluon.SymbolBlock:
    """The exported network `role` (branch, left, right or scorer) as a SymbolBlock."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gluon.SymbolBlock.imports(str(export_dir / f"{role}-symbol.json"), inputs,
                                         str(export_dir / f"{role}-0000.params"), ctx=ctx)


class _Probability(gluon.HybridBlock):
    """A two-channel network's logit as a probability: the exported pair scorer."""

    def __init__(self, net, **kwargs):
        super().__init__(**kwargs)
        self.net = net

    def hybrid_forward(self, F, left, right):
        return F.sigmoid(self.net(left, right))


def artifacts(net, view) -> List[tuple]:
    """(role, block, input names, how to make its inputs from sample images) per exported file
    set: the branch (siamese), left and right (pseudo-siamese) or scorer (two-channel)."""
    kind = getattr(net, "kind", "branch")
    if kind == "branch":
        return [("branch", net.branch, ["data"], lambda x, v: [x])]
    if kind == "two_branches":
        return [("left", net.left, ["data"], lambda x, v: [x]),
                ("right", net.right, ["data"], lambda x, v: [v])]
    return [("scorer", _Probability(net), ["left", "right"], lambda x, v: [x, v[::-1]])]


def export_branch(branch: gluon.HybridBlock, out: Path, meta: dict, images: np.ndarray,
                  ctx: mx.Context, onnx: bool = False, tolerance: float = TOLERANCE) -> dict:
    """Export a siamese branch alone (see export_model)."""
    from .model import SiameseNet

    return export_model(SiameseNet(branch), out, meta, images, ctx, onnx, tolerance)


def export_model(net, out: Path, meta: dict, images: np.ndarray, ctx: mx.Context,
                 onnx: bool = False, tolerance: float = TOLERANCE) -> dict:
    """Export, reload, compare outputs, then swap the new files in atomically.

    Args:
        net: the trained network (SiameseNet, PseudoSiameseNet or TwoChannelNet): its branch,
            its two branches or the pair scorer are exported, never a training-only part.
        out: the export directory to create or replace.
        meta: the model.json record (see model_meta).
        images: uint8 (N, H, W, C) real images to verify with (N >= 1).
        onnx: also write `<role>.onnx` files and check them with onnxruntime.
        tolerance: largest allowed absolute output difference.
    Returns:
        {"symbol": largest |difference|, "onnx": ... when written}, over all files.
    Raises:
        ExportMismatch: a reloaded file disagrees beyond `tolerance` (nothing is left behind).
    """
    from .comparator import get_view

    pre = meta["preprocess"]
    x = to_tensor(images, pre["mean"], pre["std"])  # (N, C, H, W) float32
    v = to_tensor(get_view(pre.get("right_view", "none"))(images), pre["mean"], pre["std"])
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    diffs: Dict[str, float] = {}
    files: Dict[str, str] = {}
    try:
        for role, block, inputs, make in artifacts(net, None):
            arrays = make(x, v)
            nd_in = [mx.nd.array(a, ctx=ctx) for a in arrays]
            expected = block(*nd_in).asnumpy()  # also builds the graph export needs
            if inputs == ["data"]:
                block.export(str(tmp / role))
            else:
                save_symbol(block, inputs, tmp / role)
            got = load_symbol(tmp, role, inputs, ctx)(*nd_in).asnumpy()
            diffs["symbol"] = max(diffs.get("symbol", 0.0),
                                  _diff(got, expected, out, f"{role} symbol", tolerance))
            key = "" if role in ("branch", "scorer") else f"{role}_"
            files[f"{key}symbol"] = f"{role}-symbol.json"
            files[f"{key}params"] = f"{role}-0000.params"
            if onnx:
                from .onnx_export import export_onnx, onnx_run

                export_onnx(tmp / f"{role}-symbol.json", tmp / f"{role}-0000.params",
                            [a.shape[1:] for a in arrays], tmp / f"{role}.onnx")
                got = onnx_run(tmp / f"{role}.onnx", dict(zip(inputs, arrays)))
                diffs["onnx"] = max(diffs.get("onnx", 0.0),
                                    _diff(got, expected, out, f"{role} ONNX", tolerance))
                files[f"{key}onnx"] = f"{role}.onnx"
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


def export_run(net, score: dict, data_cfg, model_cfg, images: np.ndarray, out: Path,
               ctx: mx.Context, onnx: bool = False) -> dict:
    """The one export path of training and `python -m siamese.export`: metadata + files."""
    return export_model(net, out, model_meta(data_cfg, model_cfg, score), images, ctx, onnx)


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
        ok = ok and meta.get("kind", "branch") in KIND_FILES and \
            pre.get("right_view", "none") in ("none", "invert", "blur")
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
    meta.setdefault("kind", "branch")  # exports written before pseudo-siamese and two-channel
    files = dict(meta.get("files") or {})
    if meta["kind"] == "branch":
        files = dict(files, symbol=SYMBOL, params=PARAMS)
    for key in KIND_FILES[meta["kind"]]:
        if key not in files:
            raise UserError(f"{path}: files.{key} missing (a {meta['kind']} export needs it)")
    for name in files.values():
        if not (export_dir / name).is_file():
            raise UserError(f"{export_dir / name}: missing from the export")
    return meta


def _roles(kind: str) -> List[str]:
    return {"branch": ["branch"], "two_branches": ["left", "right"],
            "pair_scorer": ["scorer"]}[kind]


def open_blocks(export_dir: Path, ctx: mx.Context = mx.cpu()) -> tuple:
    """({role: SymbolBlock}, model.json) of an export directory, each network run once on
    zeros to prove it loads; damaged files are UserErrors naming the directory."""
    meta = read_meta(export_dir)
    kind = meta["kind"]
    c, h, w = meta["input"]["shape"][1:]
    blocks = {}
    try:
        for role in _roles(kind):
            inputs = KIND_INPUTS[kind]
            block = load_symbol(Path(export_dir), role, inputs, ctx)
            out = block(*[mx.nd.zeros((1, c, h, w), ctx=ctx) for _ in inputs]).asnumpy()
            blocks[role] = block
            want = 1 if kind == "pair_scorer" else meta["embedding_size"]
            if out.reshape(1, -1).shape[-1] != want:
                raise UserError(f"{export_dir}: the {role} network gives "
                                f"{out.reshape(1, -1).shape[-1]} values, model.json says "
                                f"{'one score' if want == 1 else f'embedding_size {want}'}")
    except (mx.base.MXNetError, ValueError, AssertionError) as e:
        last = str(e).strip().splitlines()[-1][:160] if str(e).strip() else type(e).__name__
        raise UserError(f"{export_dir}: the exported symbol or parameters do not load ({last})") \
            from None
    return blocks, meta


def open_export(export_dir: Path, ctx: mx.Context = mx.cpu()) -> tuple:
    """(SymbolBlock, model.json) of a siamese export (one branch); UserError otherwise."""
    blocks, meta = open_blocks(export_dir, ctx)
    if "branch" not in blocks:
        raise UserError(f"{export_dir}: a {meta['kind']} export has no single branch")
    return blocks["branch"], meta


def open_comparator(export_dir: Path, batch_size: int, ctx: mx.Context = mx.cpu()) -> tuple:
    """(Comparator, model.json) of any export directory: the scoring path of eval.py and
    predict, from the export alone."""
    from .comparator import Comparator

    blocks, meta = open_blocks(export_dir, ctx)
    pre = meta["preprocess"]
    return Comparator(meta["kind"], blocks, meta["score"], pre["mean"], pre["std"], batch_size,
                      ctx, pre.get("right_view", "none")), meta


if __name__ == "__main__":
    import sys

    from .export_cli import main

    sys.exit(main())
