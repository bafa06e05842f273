"""Layers shared by branches: L2 normalisation of embeddings."""

from __future__ import annotations


def l2_normalize(F, x):
    """x / ||x|| per row, (B, E) -> (B, E). Plain operators: MXNet's L2Normalization in
    instance mode has no ONNX conversion."""
    return F.broadcast_div(x, F.sqrt(F.sum(F.square(x), axis=1, keepdims=True) + 1e-12))
