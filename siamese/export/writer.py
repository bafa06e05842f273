"""Write an export bundle (siamese.formats.bundle) from a trained network and verify it: every
exported network is reloaded and compared with the trained one on real images (and with
onnxruntime for ONNX files); only then are the files swapped in, so a failed export leaves the
previous one intact.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Dict

import mxnet as mx
import numpy as np
from mxnet import gluon

from .. import __version__
from ..data.turns import symmetry_turns
from ..data.views import get_view
from ..errors import ExportMismatch
from ..formats.atomic import swap_dir, temp_name
from ..formats.bundle import FORMAT, META, file_key, load_symbol, save_symbol
from ..formats.preprocess import COLOR_MODES, to_tensor
from ..models.architectures import SiameseNet, architecture_of, get_architecture
from ..models.fused import plain_graph
from .onnx import export_onnx, onnx_run

log = logging.getLogger(__name__)

TOLERANCE = 1e-5  # largest allowed |embedding difference| between trained and reloaded branch


def model_meta(data_cfg, model_cfg, score: dict, tta: int = 0,
               symmetries: str = "none") -> dict:
    """The `model.json` record: what the export is, how to preprocess an image and how to
    score a pair. `tta`: the exported branch averages over shifts of this many pixels
    (siamese.export.tta; 0 = a plain branch). `symmetries`: it embeds each image under these
    turns, side by side (siamese.export.symmetries)."""
    h, w = data_cfg.image_size
    c = data_cfg.channels
    arch = get_architecture(model_cfg.architecture)
    return {
        "format": FORMAT,
        "architecture": model_cfg.architecture,
        "kind": arch.kind,
        "what": arch.what,
        "input": {"name": "data", "names": list(arch.inputs), "layout": "NCHW",
                  "shape": [-1, c, h, w], "dtype": "float32"},
        "preprocess": {
            "color": COLOR_MODES[c],
            "resize": [h, w],
            "resample": "bilinear",
            "scale": 1.0 / 255.0,
            "mean": [float(m) for m in np.broadcast_to(data_cfg.mean, c)],
            "std": [float(s) for s in np.broadcast_to(data_cfg.std, c)],
            "formula": "x = (pixel * scale - mean) / std, HWC -> CHW",
            "right_view": data_cfg.right_view,
        },
        "branch": model_cfg.branch,
        "members": model_cfg.members,  # model.members: an ensemble in one branch
        "embedding_size": (model_cfg.embedding_size * model_cfg.members
                           * len(symmetry_turns(symmetries))),
        "normalized": model_cfg.normalize,
        "tta": int(tta),  # > 0: the branch averages over 4 shifts of tta pixels itself
        "symmetries": symmetries,  # not none: the branch embeds these turns side by side
        "distance": score["name"],  # euclidean | cosine (lower = same) | logistic (higher)
        "score": score,
        "files": {},  # filled in by export_model
        "versions": {"siamese": __version__, "mxnet": mx.__version__, "numpy": np.__version__},
    }


def export_branch(branch: gluon.HybridBlock, out: Path, meta: dict, images: np.ndarray,
                  ctx: mx.Context, onnx: bool = False, tolerance: float = TOLERANCE) -> dict:
    """Export a siamese branch alone (see export_model)."""
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
    pre = meta["preprocess"]
    x = to_tensor(images, pre["mean"], pre["std"])  # (N, C, H, W) float32
    v = to_tensor(get_view(pre.get("right_view", "none"))(images), pre["mean"], pre["std"])
    tmp = temp_name(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    diffs: Dict[str, float] = {}
    files: Dict[str, str] = {}
    try:
        arch = architecture_of(net)
        inputs = list(arch.inputs)
        for role, block, make in arch.export_blocks(net):
            arrays = make(x, v)
            nd_in = [mx.nd.array(a, ctx=ctx) for a in arrays]
            expected = block(*nd_in).asnumpy()  # the graph as trained (fused or not)
            with plain_graph(block):  # the file holds the plain operators (models.fused)
                if inputs == ["data"]:
                    block(*nd_in)  # builds the graph HybridBlock.export writes
                    block.export(str(tmp / role))
                else:
                    save_symbol(block, inputs, tmp / role)  # traces on symbols itself
            got = load_symbol(tmp, role, inputs, ctx)(*nd_in).asnumpy()
            diffs["symbol"] = max(diffs.get("symbol", 0.0),
                                  _diff(got, expected, out, f"{role} symbol", tolerance))
            single = len(arch.roles) == 1
            files[file_key(role, "symbol", single)] = f"{role}-symbol.json"
            files[file_key(role, "params", single)] = f"{role}-0000.params"
            if onnx:
                export_onnx(tmp / f"{role}-symbol.json", tmp / f"{role}-0000.params",
                            [a.shape[1:] for a in arrays], tmp / f"{role}.onnx")
                got = onnx_run(tmp / f"{role}.onnx", dict(zip(inputs, arrays)))
                diffs["onnx"] = max(diffs.get("onnx", 0.0),
                                    _diff(got, expected, out, f"{role} ONNX", tolerance))
                files[file_key(role, "onnx", single)] = f"{role}.onnx"
        meta = dict(meta, files=files, verified={"max_abs_diff": diffs, "tolerance": tolerance,
                                                 "images": int(len(images))})
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n")
        swap_dir(tmp, out)
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
               ctx: mx.Context, onnx: bool = False, tta: int = 0,
               symmetries: str = "none") -> dict:
    """The one export path of training and `python -m siamese.export`: metadata + files
    (`tta`: `net`'s branch is a siamese.export.tta.ShiftAveraged of that shift; `symmetries`:
    a siamese.export.symmetries.Symmetric of those turns)."""
    meta = model_meta(data_cfg, model_cfg, score, tta, symmetries)
    return export_model(net, out, meta, images, ctx, onnx)
