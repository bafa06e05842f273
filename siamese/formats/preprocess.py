"""How an image becomes the network's input, as every export's model.json states it: colour
mode, scaling, mean and std, channels first; and padding a batch to the static batch shape.

numpy only. Decoding files is siamese.data.images; the same numbers reach training,
evaluation, predict and a deployed model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

COLOR_MODES = {1: "L", 3: "RGB"}  # channels -> Pillow mode, model.json preprocess.color
CHANNELS = {mode: c for c, mode in COLOR_MODES.items()}  # model.json color -> channels
# model.json `symmetries` -> the turns of each image the export embeds side by side: t in 0..3
# quarter turns anticlockwise, t + 4 mirrored left to right first (siamese.data.turns)
SYMMETRIES = {
    "none": (0,),
    "flip": (0, 4),
    "rotations": (0, 1, 2, 3),
    "dihedral": (0, 1, 2, 3, 4, 5, 6, 7),
}


def to_tensor(batch: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W): scale to [0, 1], subtract mean, divide by std."""
    x = batch.astype(np.float32) * np.float32(1.0 / 255.0)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def pad_batch(rows: np.ndarray, size: int) -> np.ndarray:
    """`rows` (n <= size, ...) padded to `size` rows by repeating the last one: every batch a
    hybridized network sees has the same shape, so it never re-plans."""
    if len(rows) >= size:
        return rows
    return np.concatenate([rows, np.repeat(rows[-1:], size - len(rows), 0)])
