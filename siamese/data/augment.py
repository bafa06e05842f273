"""Training-time augmentation of decoded images, uint8 (N, H, W, C) in and out, seeded.

Random translation by whole pixels (`data.augment_shift`) and, when any of rotation, shear or
scale is asked for, a random affine distortion of each image in the manner of Koch et al.
(2015): rotation, shear, scale (x and y apart) and translation, sampled bilinearly, edges
repeated. Without rotation, shear and scale the images and random draws are exactly those of
translation alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def random_shift(batch: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Translate each image (N, H, W, C) by up to `max_shift` pixels, filling with edge values."""
    if max_shift <= 0:
        return batch
    n, h, w, _ = batch.shape
    s = max_shift
    padded = np.pad(batch, ((0, 0), (s, s), (s, s), (0, 0)), mode="edge")
    dy, dx = rng.integers(0, 2 * s + 1, (2, n))
    rows = (dy[:, None] + np.arange(h))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + np.arange(w))[:, None, :]  # (N, 1, W)
    return padded[np.arange(n)[:, None, None], rows, cols]


def affine_matrices(n: int, rotate: float, shear: float, scale: float,
                    rng: np.random.Generator) -> np.ndarray:
    """(N, 2, 2) random maps rotation(theta) . shear(phi) . diag(sx, sy) in (row, col)
    coordinates; angles uniform in +-rotate, +-shear degrees, scales in 1 +- scale."""
    theta = np.deg2rad(rng.uniform(-rotate, rotate, n))
    phi = np.deg2rad(rng.uniform(-shear, shear, n))
    sy, sx = rng.uniform(1 - scale, 1 + scale, (2, n))
    c, s = np.cos(theta), np.sin(theta)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], 1)  # (N, 2, 2)
    sh = np.zeros((n, 2, 2))
    sh[:, 0, 0] = sh[:, 1, 1] = 1.0
    sh[:, 0, 1] = np.tan(phi)
    return rot @ sh @ (np.eye(2)[None] * np.stack([sy, sx], -1)[:, None, :])


def warp(batch: np.ndarray, maps: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Each image moved by `maps[k]` (2x2, about its centre) then `shifts[k]` (rows, cols),
    sampled bilinearly from the source with edges repeated; uint8 out (rounded)."""
    n, h, w, c = batch.shape
    centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0], np.float32)
    grid = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), -1)
    grid = grid.reshape(-1, 2).astype(np.float32)
    inv = np.linalg.inv(maps).astype(np.float32)  # output pixel -> source position
    rel = grid[None] - centre - shifts[:, None, :].astype(np.float32)  # (N, H*W, 2)
    src = np.matmul(rel, inv.transpose(0, 2, 1)) + centre
    y = np.clip(src[..., 0], 0, h - 1)
    x = np.clip(src[..., 1], 0, w - 1)
    y0, x0 = y.astype(np.int64), x.astype(np.int64)  # floor: both are >= 0
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (y - y0)[..., None], (x - x0)[..., None]
    base = (np.arange(n) * (h * w))[:, None]
    flat = batch.reshape(n * h * w, c).astype(np.float32)
    top = flat[base + y0 * w + x0] * (1 - fx) + flat[base + y0 * w + x1] * fx
    bottom = flat[base + y1 * w + x0] * (1 - fx) + flat[base + y1 * w + x1] * fx
    out = top * (1 - fy) + bottom * fy  # (N, H*W, C)
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8).reshape(n, h, w, c)


@dataclass(frozen=True)
class Augment:
    """The training augmentation of the `data` section: shift in pixels, rotate and shear in
    degrees, scale as a fraction (0.1 = sizes 0.9-1.1)."""

    shift: int = 0
    rotate: float = 0.0
    shear: float = 0.0
    scale: float = 0.0

    @classmethod
    def of(cls, data_cfg) -> Augment:
        return cls(data_cfg.augment_shift, data_cfg.augment_rotate, data_cfg.augment_shear,
                   data_cfg.augment_scale)

    @property
    def affine(self) -> bool:
        return bool(self.rotate or self.shear or self.scale)

    def __call__(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.affine:
            return random_shift(batch, self.shift, rng)
        n = len(batch)
        maps = affine_matrices(n, self.rotate, self.shear, self.scale, rng)
        shifts = rng.integers(-self.shift, self.shift + 1, (n, 2)) if self.shift else \
            np.zeros((n, 2))
        return warp(batch, maps, shifts.astype(np.float64))


def as_augment(value) -> Augment:
    """An Augment, or a translation in pixels (int) as one."""
    return value if isinstance(value, Augment) else Augment(shift=int(value))
