"""The graph rewrites of the serving exports, one registry: `fused` (MXNet's oneDNN subgraph
backend) and `int8` (the fused graph quantized, calibrated on images). siamese.export.optimize
writes and verifies the exports they make."""

from __future__ import annotations

import collections
import json
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import mxnet as mx
import numpy as np
from mxnet.contrib import quantization

from ..errors import UserError

BACKEND = "MKLDNN"  # oneDNN; the subgraph backends of MXNet 1.9.1 are MKLDNN, MKLDNN_QUANTIZE


def mean_to_pool(sym):
    """The graph with every mean over H and W (B, C, H, W) -> (B, C) replaced by a global
    average Pooling (B, C, 1, 1), which the next FullyConnected flattens: the same maths, and
    oneDNN pools (in int8, too) where `mean` would dequantize the whole map first. Only when
    the mean feeds FullyConnected layers alone (the branches' `F.mean` before `Dense`)."""
    graph = json.loads(sym.tojson())
    nodes = graph["nodes"]
    users = collections.defaultdict(list)
    for node in nodes:
        for src, *_ in node.get("inputs", []):
            users[src].append(node["op"])
    for k, node in enumerate(nodes):
        axis = node.get("attrs", {}).get("axis", "").replace(" ", "")
        if node["op"] == "mean" and axis == "(2,3)" and users[k] and \
                set(users[k]) == {"FullyConnected"} and \
                node["attrs"].get("keepdims", "False") in ("False", "0"):
            node["op"] = "Pooling"
            node["attrs"] = {"global_pool": "True", "kernel": "(1, 1)", "pool_type": "avg"}
    return mx.sym.load_json(json.dumps(graph))


def global_means(sym) -> List[str]:
    """Names of the global average poolings of a graph. int8 leaves them in float: a mean of a
    large sparse map kept at its input's int8 scale has too few levels (Omniglot at 105x105,
    26x26 maps: cosine with the float branch down to 0.86 and 0.0026 test AUC lost; with the
    pooling in float 0.97 and no AUC lost)."""
    return [n["name"] for n in json.loads(sym.tojson())["nodes"] if n["op"] == "Pooling"
            and n.get("attrs", {}).get("global_pool") == "True"
            and n["attrs"].get("pool_type") == "avg"]


def fuse(sym, args: dict, aux: dict) -> tuple:
    """(symbol, args, aux, info): the oneDNN subgraph graph of an exported float branch.

    `sym.get_backend_symbol` is used because `sym.optimize_for(BACKEND, ...)` without input
    shapes silently returned the graph unchanged on 1.9.1. The fused convolution holds the
    BatchNorm statistics as inputs and folds them into its weights when first run.
    """
    return mean_to_pool(sym).get_backend_symbol(BACKEND), args, aux, {"backend": BACKEND}


def quantize(sym, args: dict, aux: dict, calib: Optional[np.ndarray], mode: str) -> tuple:
    """(symbol, args, aux, info): the branch fused and quantized to int8 (activations u8/s8
    chosen by MXNet, `quantized_dtype='auto'`), thresholds calibrated on `calib`
    (N, C, H, W) float32 with `mode` ('naive': min/max, 'entropy': KL divergence)."""
    if calib is None or not len(calib):
        raise UserError("--quantize int8 needs calibration images (the run's validation pairs "
                        "have none)")
    n, batch = len(calib), min(64, len(calib))
    # the last batch is padded with images from the start: min/max and histograms barely move
    it = mx.io.NDArrayIter(calib, batch_size=batch, data_name="data", last_batch_handle="pad")
    sym = mean_to_pool(sym)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qsym, qargs, qaux = quantization.quantize_model_mkldnn(
            sym, args, aux, ctx=mx.cpu(), calib_mode=mode, calib_data=it,
            num_calib_examples=n, quantized_dtype="auto", quantize_mode="full",
            excluded_sym_names=global_means(sym), logger=None)
    return qsym, qargs, qaux, {"backend": "MKLDNN_QUANTIZE", "dtype": "int8 (auto: u8/s8)",
                               "calibration_images": n}


@dataclass(frozen=True)
class Optimizer:
    """A serving export: its graph rewrite, and whether it is calibrated on images (then
    called with (calib (M, C, H, W) float32, mode) after (sym, args, aux))."""

    rewrite: Callable[..., tuple]
    calibrated: bool = False

    def __call__(self, sym, args: dict, aux: dict, calib: Optional[np.ndarray],
                 mode: str) -> tuple:
        """(symbol, args, aux, info) of the rewritten graph."""
        if self.calibrated:
            return self.rewrite(sym, args, aux, calib, mode)
        return self.rewrite(sym, args, aux)


OPTIMIZERS: Dict[str, Optimizer] = {"fused": Optimizer(fuse),
                                    "int8": Optimizer(quantize, calibrated=True)}


def get_optimizer(kind: str) -> Optimizer:
    if kind not in OPTIMIZERS:
        raise UserError(f"unknown optimized export {kind!r} (valid: {', '.join(OPTIMIZERS)})")
    return OPTIMIZERS[kind]
