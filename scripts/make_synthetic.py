"""Write a synthetic image set of any size: one sub-folder per class, each class a shape
(disc, square, triangle, ring, cross, bars) in its own colour and size, jittered in position,
size and brightness, on a noisy background; or plain class-tinted noise (--kind noise).

    python scripts/make_synthetic.py OUT --count 100000 --classes 1000 --size 64 --format png

Deterministic: image k of class c is drawn from a generator seeded with (seed, c, k), so any
count reproduces the same first images, and the work splits over --jobs processes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

SHAPES = 6


def shape_mask(kind: int, yy: np.ndarray, xx: np.ndarray, r: float) -> np.ndarray:
    """A boolean mask of shape `kind` of radius r around (0, 0) on the grids yy, xx."""
    ay, ax = np.abs(yy), np.abs(xx)
    return [
        yy ** 2 + xx ** 2 <= r ** 2,  # disc
        (ay <= r * 0.8) & (ax <= r * 0.8),  # square
        (yy <= r * 0.7) & (ax <= (yy + r) * 0.55),  # triangle
        (yy ** 2 + xx ** 2 <= r ** 2) & (yy ** 2 + xx ** 2 >= (0.55 * r) ** 2),  # ring
        ((ay <= r * 0.25) & (ax <= r)) | ((ax <= r * 0.25) & (ay <= r)),  # cross
        (ay <= r) & ((np.floor((xx + r) / (r * 0.5)) % 2) == 0) & (ax <= r),  # bars
    ][kind]


def draw(c: int, k: int, size: int, channels: int, kind: str, seed: int) -> np.ndarray:
    """uint8 (size, size, channels): image k of class c."""
    rng = np.random.default_rng([seed, c, k])
    crng = np.random.default_rng([seed, c])  # the class's own look
    colour = crng.integers(60, 256, channels)
    img = rng.normal(40, 20, (size, size, channels))
    if kind == "noise":
        return np.clip(img + colour * 0.6 + rng.normal(0, 30, img.shape), 0, 255).astype(
            np.uint8)
    r = size * (0.18 + 0.12 * crng.random()) * (1 + 0.15 * rng.standard_normal())
    cy, cx = size / 2 + rng.normal(0, size * 0.08, 2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    mask = shape_mask(c % SHAPES, yy - cy, xx - cx, max(r, 2.0))
    img[mask] = colour * (0.8 + 0.2 * rng.random())
    return np.clip(img, 0, 255).astype(np.uint8)


def write_class(job: tuple) -> int:
    out, c, n, size, channels, fmt, kind, seed = job
    d = Path(out) / f"c{c:05d}"
    d.mkdir(parents=True, exist_ok=True)
    mode = "RGB" if channels == 3 else "L"
    for k in range(n):
        arr = draw(c, k, size, channels, kind, seed)
        img = Image.fromarray(arr.squeeze(-1) if channels == 1 else arr, mode)
        if fmt == "jpg":
            img.save(d / f"{k:06d}.jpg", quality=90)
        else:
            img.save(d / f"{k:06d}.png", compress_level=1)
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="folder to write (class sub-folders c00000, c00001, ...)")
    p.add_argument("--count", type=int, default=10000, help="images in all")
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--size", type=int, default=64, help="side in pixels")
    p.add_argument("--channels", type=int, default=3, choices=(1, 3))
    p.add_argument("--format", default="png", choices=("png", "jpg"))
    p.add_argument("--kind", default="shapes", choices=("shapes", "noise"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = p.parse_args(argv)
    per = [a.count // a.classes + (c < a.count % a.classes) for c in range(a.classes)]
    jobs = [(a.out, c, n, a.size, a.channels, a.format, a.kind, a.seed)
            for c, n in enumerate(per)]
    t0 = time.perf_counter()
    if a.jobs == 1:
        done = sum(map(write_class, jobs))
    else:
        with Pool(a.jobs) as pool:
            done = sum(pool.imap_unordered(write_class, jobs, chunksize=4))
    print(f"wrote {done} images, {a.classes} classes, {a.size}x{a.size}x{a.channels} "
          f"{a.format} to {a.out} in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
