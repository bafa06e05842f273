"""Serving exports of a siamese branch: `fused` (MXNet's oneDNN subgraph backend folds
BatchNorm into the convolutions and fuses convolution + BatchNorm + ReLU, and Dense, into one
operator each) and `int8` (the fused graph quantized with MXNet's quantization tooling,
calibrated on the run's validation images).

The files are the ordinary bundle (branch-symbol.json, branch-0000.params, model.json) and
load with plain `gluon.SymbolBlock.imports` in a fresh process: the fused and quantized
operators (`_sg_mkldnn_conv`, ...) are registered in every MXNet build with oneDNN
(`mx.runtime.Features()` MKLDNN), which model.json names under `requires`.

Verified like every export, with a tolerance that fits the kind: the reloaded network embeds
the run's test images and is compared with the trained branch (cosine similarity of the
embeddings, largest absolute difference), then scores the run's test pairs; an export that
loses more than MAX_AUC_LOSS test AUC against the float branch is refused unless forced.
"""

from __future__ import annotations

import collections
import json
import logging
import shutil
from pathlib import Path
from typing import Dict, Optional, Tuple

import mxnet as mx
import numpy as np

from ..errors import ExportMismatch, UserError
from ..eval.metrics import verification
from ..formats.atomic import swap_dir, temp_name
from ..formats.bundle import BRANCH_FILES, META, PARAMS, SYMBOL
from ..formats.preprocess import to_tensor
from ..models.fused import plain_graph
from ..scoring.bundles import open_comparator
from ..scoring.comparator import Comparator
from .rewrites import BACKEND, get_optimizer

log = logging.getLogger(__name__)

MAX_AUC_LOSS = 0.002  # largest test AUC an optimized export may lose against the float branch
# Per kind: smallest cosine similarity and largest |difference| of unit embeddings allowed
# between the reloaded export and the trained branch, over the run's test images: a broken
# export, not a small loss (the test AUC judges that). int8 of an Omniglot run at 105x105 gave
# cosines from 0.970 (mean 0.990) and lost no test AUC; a planted error gives far less.
TOLERANCES = {"fused": {"min_cosine": 0.99999, "max_abs_diff": 1e-4},
              "int8": {"min_cosine": 0.95, "max_abs_diff": 0.1}}


def float_graph(branch, x: np.ndarray, tmp: Path) -> tuple:
    """(symbol, args, aux) of the trained branch as `HybridBlock.export` writes it (plain
    operators: the subgraph backend folds BatchNorm into convolutions, not BatchNormWithReLU)."""
    with plain_graph(branch):
        branch.hybridize()
        branch(mx.nd.array(x[:1])).wait_to_read()  # export needs one forward of the graph
        branch.export(str(tmp / "float"))
    sym, args, aux = mx.model.load_checkpoint(str(tmp / "float"), 0)
    for name in ("float-symbol.json", "float-0000.params"):
        (tmp / name).unlink()
    return sym, args, aux


def save_graph(folder: Path, sym, args: dict, aux: dict) -> Dict[str, int]:
    """Write branch-symbol.json + branch-0000.params; returns the operator counts."""
    sym.save(str(folder / SYMBOL))
    arrays = {f"arg:{k}": v for k, v in args.items()}
    arrays.update({f"aux:{k}": v for k, v in aux.items()})
    mx.nd.save(str(folder / PARAMS), arrays)
    ops = [n["op"] for n in json.loads(sym.tojson())["nodes"] if n["op"] != "null"]
    return dict(collections.Counter(ops))


def compare(got: np.ndarray, expected: np.ndarray) -> Dict[str, float]:
    """Cosine similarity per row (min, mean) and the largest |difference| of (N, E) arrays."""
    g, e = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    cos = (g * e).sum(1) / np.maximum(np.linalg.norm(g, axis=1) * np.linalg.norm(e, axis=1),
                                      1e-12)
    return {"min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()),
            "max_abs_diff": float(np.abs(g - e).max())}


def check_tolerance(diffs: dict, tol: dict, where: Path, kind: str) -> None:
    if not (diffs["min_cosine"] >= tol["min_cosine"]
            and diffs["max_abs_diff"] <= tol["max_abs_diff"]):
        raise ExportMismatch(
            f"{where}: the reloaded {kind} export differs from the trained branch (cosine "
            f">= {diffs['min_cosine']:.6f}, largest |difference| {diffs['max_abs_diff']:.3g}; "
            f"tolerance cosine >= {tol['min_cosine']}, |difference| <= {tol['max_abs_diff']}); "
            f"export removed")


def check_auc(float_auc: float, auc: float, where: Path, kind: str, force: bool,
              max_loss: float = MAX_AUC_LOSS) -> float:
    """The test AUC lost (float - optimized); UserError above `max_loss` unless forced."""
    loss = float_auc - auc
    if loss > max_loss and not force:
        raise UserError(f"{where}: the {kind} export loses {loss:.4f} test AUC ({auc:.4f} "
                        f"against {float_auc:.4f} for the float branch; at most {max_loss} "
                        f"allowed); not written (--force keeps it)")
    return loss


def score_test_pairs(comp: Comparator, test: tuple) -> Tuple[np.ndarray, dict]:
    """(embeddings of the test images (N, E), {"auc", "eer", "accuracy"} of the test pairs at
    the export's threshold). `test` = (uint8 images, left index, right index, labels)."""
    images, left, right, labels = test
    emb = comp.embed_side(images, "left")
    s = comp.score(images, left, right)
    v = verification(s, labels, comp.spec["higher_is_similar"], comp.spec["threshold"])
    return emb, {k: v[k] for k in ("auc", "eer", "accuracy", "n_pairs")}


def export_optimized(float_comp: Comparator, branch, out: Path, meta: dict, kind: str,
                     test: tuple, calib: Optional[np.ndarray], calib_mode: str,
                     calib_source: str, force: bool = False) -> dict:
    """Write the `kind` export of a trained siamese branch to `out`, verified, atomically.

    Args:
        float_comp: a Comparator over the trained (float) network with the export's score.
        branch: its branch (a HybridBlock).
        meta: the float export's model.json record (siamese.export.writer.model_meta).
        kind: a key of OPTIMIZERS ("fused", "int8").
        test: (uint8 images (N, H, W, C), left, right, labels): the run's test pairs.
        calib: (M, C, H, W) float32 calibration inputs (int8), preprocessed.
        calib_mode, calib_source: how and on what int8 is calibrated (recorded).
        force: keep an export that loses more than MAX_AUC_LOSS test AUC.
    Returns:
        the "optimized" record written into model.json.
    Raises:
        ExportMismatch: the reloaded export is outside TOLERANCES[kind] (exit 1).
        UserError: it loses too much test AUC and `force` is off (exit 2).
    """
    optimizer = get_optimizer(kind)
    tmp = temp_name(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        pre = meta["preprocess"]
        x = to_tensor(test[0][:1], pre["mean"], pre["std"])  # (1, C, H, W) to trace with
        sym, args, aux = float_graph(branch, x, tmp)
        sym, args, aux, info = optimizer(sym, args, aux, calib, calib_mode)
        ops = save_graph(tmp, sym, args, aux)
        meta = dict(meta, files=BRANCH_FILES)  # complete, as the float export's
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n")
        expected, float_test = score_test_pairs(float_comp, test)
        comp, _ = open_comparator(tmp, float_comp.batch_size)  # plain SymbolBlock.imports
        got, this_test = score_test_pairs(comp, test)
        diffs = compare(got, expected)
        check_tolerance(diffs, TOLERANCES[kind], out, kind)
        auc_loss = check_auc(float_test["auc"], this_test["auc"], out, kind, force)
        record = {
            "kind": kind, **info, "operators": ops, "requires": [BACKEND],
            "loads_with": "gluon.SymbolBlock.imports (any MXNet build with oneDNN/MKLDNN)",
            "calibration": ({"mode": calib_mode, "images": info["calibration_images"],
                             "source": calib_source} if optimizer.calibrated else None),
            "verified": dict(diffs, tolerance=TOLERANCES[kind], images=int(len(got))),
            "test": {"float": float_test, kind: this_test, "auc_loss": auc_loss,
                     "max_auc_loss": MAX_AUC_LOSS, "forced": bool(force and
                                                                  auc_loss > MAX_AUC_LOSS)},
        }
        final = dict(meta, requires=[BACKEND], optimized=record,
                     verified={"max_abs_diff": {kind: diffs["max_abs_diff"]},
                               "min_cosine": diffs["min_cosine"],
                               "tolerance": TOLERANCES[kind], "images": int(len(got))})
        (tmp / META).write_text(json.dumps(final, indent=2) + "\n")
        swap_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %s (%s): cosine >= %.6f, |diff| <= %.3g, test AUC %.4f (float %.4f)",
             out, kind, diffs["min_cosine"], diffs["max_abs_diff"], this_test["auc"],
             float_test["auc"])
    return record
