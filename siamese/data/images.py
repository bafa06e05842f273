"""Decode images: Pillow and numpy only (shared by training, eval and predict).

One code path turns a file into the network's input, so the numbers a deployed model sees are
the numbers it was trained and scored on.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ..errors import UserError
from ..formats.preprocess import COLOR_MODES

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm",
                    ".ppm")


# What Pillow raises on bytes it cannot decode: besides OSError and friends, a header declaring
# more than Image.MAX_IMAGE_PIXELS * 2 pixels (DecompressionBombError), or a size whose buffers
# cannot be had (MemoryError: a 44,739,236 x 1 16-bit PNG); both found by fuzzing.
UNDECODABLE = (OSError, UnidentifiedImageError, ValueError, SyntaxError,
               Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError)


def _why(e: Exception) -> str:
    return str(e) or type(e).__name__


class ImageTooLarge(UserError):
    """An image whose header declares more pixels than Pillow's limit (Image.MAX_IMAGE_PIXELS):
    refused before its pixels are decoded."""


def _refuse(name, e: Exception) -> UserError:
    """The UserError of an image Pillow could not decode."""
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return ImageTooLarge(f"{name}: image larger than the pixel limit ({_why(e)})")
    return UserError(f"{name}: cannot read image ({_why(e)})")


class DamagedSource(UserError):
    """The container of the images (a pack) is damaged: the run stops, nothing is skipped."""


def _convert(img: Image.Image, size: Sequence[int], channels: int) -> np.ndarray:
    img.load()  # decodes fully: a truncated file raises here instead of going black
    img = img.convert(COLOR_MODES[channels])
    h, w = int(size[0]), int(size[1])
    if img.size != (w, h):
        img = img.resize((w, h), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr.reshape(arr.shape[0], arr.shape[1], channels)


def load_image(path: str | Path, size: Sequence[int], channels: int) -> np.ndarray:
    """Decode one file, convert its colour mode and resize it.

    Args:
        path: image file (any format Pillow reads, any size, grayscale or colour).
        size: (height, width) in pixels.
        channels: 1 (grayscale) or 3 (RGB).
    Returns:
        uint8 array (H, W, C).
    Raises:
        UserError: naming the file when it cannot be decoded (a truncated file included).
    """
    try:
        with Image.open(path) as img:
            return _convert(img, size, channels)
    except UNDECODABLE as e:
        raise _refuse(path, e) from None


def decode_bytes(data: bytes, size: Sequence[int], channels: int, name: str,
                 formats: Sequence[str] | None = None) -> np.ndarray:
    """`load_image` for an encoded image held in memory (a pack's record, an upload); `name`
    is named in the UserError; `formats` (Pillow's names) limits what is opened."""
    try:
        with Image.open(io.BytesIO(data), formats=formats) as img:
            return _convert(img, size, channels)
    except UNDECODABLE as e:
        raise _refuse(name, e) from None


def decode_each(n: int, load: Callable[[int], np.ndarray],
                sink: Callable[[int, np.ndarray], None], progress: bool = False,
                desc: str = "decode") -> list:
    """Decode items 0..n-1 with `load(i)` on 4 threads and hand each to `sink(i, image)`.

    Returns:
        [(index, message)] of the items `load` refused with a UserError, sorted.
    """
    bad: list = []

    def one(i: int) -> None:
        try:
            sink(i, load(i))
        except DamagedSource:
            raise
        except UserError as e:
            bad.append((i, str(e)))

    if n:
        pool = ThreadPoolExecutor(max_workers=4)
        try:
            jobs = pool.map(one, range(n))
            if progress:
                jobs = tqdm(jobs, total=n, desc=desc, unit="img", leave=False)
            for _ in jobs:
                pass
        finally:  # a signal (or an error) stops the decoding without waiting for the queue
            pool.shutdown(wait=True, cancel_futures=True)
    return sorted(bad)


def decode_all(paths: Sequence[str | Path], size: Sequence[int], channels: int,
               progress: bool = False) -> tuple[np.ndarray, list]:
    """Decode many files, collecting the unreadable ones; threads overlap the decoding.

    Returns:
        (uint8 array (N_good, H, W, C) of the readable files in order, [(index, message)]).
    """
    out = np.empty((len(paths), int(size[0]), int(size[1]), channels), dtype=np.uint8)

    def sink(i: int, image: np.ndarray) -> None:
        out[i] = image

    bad = decode_each(len(paths), lambda i: load_image(paths[i], size, channels), sink,
                      progress)
    if not bad:
        return out, bad
    return out[np.setdiff1d(np.arange(len(paths)), [i for i, _ in bad])], bad


def load_images(paths: Sequence[str | Path], size: Sequence[int], channels: int,
                progress: bool = False) -> np.ndarray:
    """Decode many files into one uint8 array (N, H, W, C).

    Raises:
        UserError: the first unreadable file, named.
    """
    images, bad = decode_all(paths, size, channels, progress)
    if bad:
        raise UserError(bad[0][1])
    return images
