"""Test-time averaging (`eval.py --tta K`): each image's embedding is the mean of the embeddings
of the image and of its four copies shifted by K pixels (up, down, left, right; edges
repeated), put back on the unit sphere when the model's embeddings are there. Pair scores and
episodes then use the averaged embeddings; the export itself is unchanged."""

from __future__ import annotations

import numpy as np


def shifted(images: np.ndarray, k: int) -> list:
    """The four copies of uint8 images (N, H, W, C) moved by k pixels (down, up, right,
    left), edges repeated."""
    pad = np.pad(images, ((0, 0), (k, k), (k, k), (0, 0)), mode="edge")
    h, w = images.shape[1:3]
    return [pad[:, dy:dy + h, dx:dx + w] for dy, dx in
            ((0, k), (2 * k, k), (k, 0), (k, 2 * k))]


def averaged(embed, images: np.ndarray, k: int) -> np.ndarray:
    """mean of embed(x) over the images and their shifted copies (k = 0: embed(images))."""
    first = embed(images)
    if k <= 0:
        return first
    total = first.astype(np.float64)
    for copy in shifted(images, k):
        total += embed(np.ascontiguousarray(copy))
    mean = total / 5.0
    norms = np.linalg.norm(first, axis=1)
    if len(norms) and np.allclose(norms, 1.0, atol=1e-3):  # normalised model: stay on sphere
        mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    return mean.astype(np.float32)
