"""Views: deterministic transforms of uint8 images (N, H, W, C) that make a second image domain
from one folder (data.right_view shows the right image of every pair through one)."""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from ..errors import UserError


def invert(images: np.ndarray) -> np.ndarray:
    """255 - pixel, uint8 (N, H, W, C)."""
    return 255 - images


def blur(images: np.ndarray) -> np.ndarray:
    """Binomial blur, kernel [1, 4, 6, 4, 1] / 16 along H then W, edges repeated; uint8 out
    (rounded half up). Deterministic, so a second domain can be rebuilt anywhere."""
    k = np.array([1, 4, 6, 4, 1], np.float64) / 16.0
    x = images.astype(np.float64)
    pad = np.pad(x, ((0, 0), (2, 2), (0, 0), (0, 0)), mode="edge")
    x = sum(k[i] * pad[:, i:i + x.shape[1]] for i in range(5))
    pad = np.pad(x, ((0, 0), (0, 0), (2, 2), (0, 0)), mode="edge")
    x = sum(k[i] * pad[:, :, i:i + x.shape[2]] for i in range(5))
    return np.floor(x + 0.5).clip(0, 255).astype(np.uint8)


VIEWS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda images: images, "invert": invert, "blur": blur,
}


def get_view(name: str) -> Callable[[np.ndarray], np.ndarray]:
    if name not in VIEWS:
        raise UserError(f"data.right_view: unknown {name!r} (valid: {', '.join(VIEWS)})")
    return VIEWS[name]
