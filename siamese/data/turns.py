"""Quarter turns and mirror images of uint8 image batches (N, H, W, C): one convention for the
rotation classes of training (data.rotate_classes, siamese.data.trainset) and the symmetries
of test time (export.symmetries, eval.py --symmetries).

Turn t in 0..3 is t quarter turns anticlockwise (numpy's rot90 over H and W); t + 4 mirrors the
image left to right first. SYMMETRIES (model.json's contract, siamese.formats.preprocess)
names the sets of turns an image is embedded in at test time: the symmetries of the square
(dihedral: all 8), its rotations (4), the mirror (2).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from ..errors import UserError
from ..formats.preprocess import SYMMETRIES


def turned(images: np.ndarray, t: int) -> np.ndarray:
    """uint8 images (N, H, W, C) under turn t (mirrored first when t >= 4), contiguous."""
    x = images[:, :, ::-1] if t >= 4 else images
    return np.ascontiguousarray(np.rot90(x, t % 4, axes=(1, 2)))


def symmetry_turns(name: str, what: str = "symmetries") -> Tuple[int, ...]:
    """The turns of a SYMMETRIES name; UserError naming `what` for an unknown one."""
    if name not in SYMMETRIES:
        raise UserError(f"{what}: unknown {name!r} (valid: {', '.join(SYMMETRIES)})")
    return SYMMETRIES[name]


def needs_square(name: str) -> bool:
    """True when the symmetries turn images by a quarter (height and width swap)."""
    return any(t % 2 for t in symmetry_turns(name))
