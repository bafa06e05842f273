"""Where a run's decoded images live: in memory, in the decoded cache on disk, or nowhere
(stream: decoded when a batch needs them); and from where they are decoded: an image folder or
a RecordIO pack.

    data.storage: memory   every image decoded into one uint8 array (the shipped digits)
                  cache    mapped from the decoded cache (siamese.data.cache), built on first use
                  stream   decoded batch by batch (data.workers decode in parallel)
                  auto     memory below AUTO_CACHE_IMAGES images, cache from there

Every storage gives the same images in the same order, so the same splits, pairs and figures.
Read top to bottom: `store` (what a run keeps), then each way of keeping them in turn (memory,
cache, stream), then `load_files` (evaluation maps rows of a folder's cache when it can).
The images come from siamese.data.sources (a folder or a pack); the cache file's format is
siamese.data.cache's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..errors import UserError
from . import cache
from .folder import ImageFolder, scan_folder
from .images import decode_each, load_images
from .recordio import pack_fingerprint
from .sources import item_loader

log = logging.getLogger(__name__)

AUTO_CACHE_IMAGES = 20000  # data.storage: auto caches sets of this many images and more


@dataclass
class Stored:
    """The decoded images of a source and how they are kept.

    Attributes:
        images: uint8 (N_good, H, W, C) array, memory map or StreamImages.
        bad: [(item index, message)] of the unreadable items.
        digests: every good image's digest, or None (computed from `images` when needed).
        info: what the run directory records (storage.json).
    """

    images: object
    bad: list
    digests: Optional[List[str]]
    info: dict


def store(folder: ImageFolder, cfg, progress: bool = False) -> Stored:
    """Decode (or map) every image of `folder` as `data.storage` says."""
    kind = choose(cfg, len(folder.paths))
    size, channels = [int(v) for v in cfg.image_size], int(cfg.channels)
    info = {"storage": kind, "source": "pack" if folder.pack is not None else "folder",
            "root": str(folder.root), "images": len(folder.paths), "workers": cfg.workers}
    return KEEP[kind](folder, cfg, item_loader(folder, size, channels), size, channels, info,
                      progress)


def choose(cfg, n: int) -> str:
    """The storage of a data set of n images (`data.storage`, `auto` resolved)."""
    if cfg.storage != "auto":
        return cfg.storage
    return "cache" if n >= AUTO_CACHE_IMAGES else "memory"


def _in_memory(folder: ImageFolder, cfg, load, size, channels: int, info: dict,
               progress: bool) -> Stored:
    """Every image decoded into one uint8 array; the unreadable ones left out."""
    n = len(folder.paths)
    out = np.empty((n, int(size[0]), int(size[1]), channels), np.uint8)
    bad = decode_each(n, load, out.__setitem__, progress)
    if bad:
        out = out[np.setdiff1d(np.arange(n), [i for i, _ in bad])]
    return Stored(out, bad, None, info)


def _from_cache(folder: ImageFolder, cfg, load, size, channels: int, info: dict,
                progress: bool) -> Stored:
    """A memory map of the folder's decoded cache, built first if missing or damaged."""
    key, path = _cache_file(folder, size, channels, cfg.cache_dir)
    where = path.parent
    shape = (len(folder.paths), size[0], size[1], channels)
    try:
        with cache.build_lock(path):
            opened = cache.open_cache(path, key, shape)
            built = opened is None
            if built:
                log.info("decoded cache: first use of %s at %dx%dx%d, writing %s",
                         folder.root, size[0], size[1], channels, path)
                opened = cache.build_cache(path, key, shape, load, progress)
    except OSError as e:
        raise UserError(f"data.cache_dir: {where}: cannot write the decoded cache "
                        f"({e.strerror or e})") from None
    if not built:
        log.info("decoded cache: mapped %s (%d images)", path, opened[1]["shape"][0])
    images, meta = opened
    info = dict(info, cache={"file": str(path), "built": built})
    return Stored(images, [(int(i), m) for i, m in meta["bad"]], list(meta["digests"]), info)


def _cache_file(folder: ImageFolder, size, channels: int, cache_dir: str) -> Tuple[str, Path]:
    """(key, path) of the folder's (or pack's) decoded cache at this size and colour."""
    if folder.pack is not None:
        fingerprint = ["pack", pack_fingerprint(folder.root), folder.paths]
    else:
        fingerprint = cache.folder_fingerprint(folder.root, folder.paths)
    key = cache.cache_key(fingerprint, size, channels)
    where = cache.default_dir() if cache_dir == "auto" else Path(cache_dir).expanduser()
    return key, where / f"{key}.u8"


def _streamed(folder: ImageFolder, cfg, load, size, channels: int, info: dict,
              progress: bool) -> Stored:
    """One decoding pass finds the unreadable images and digests the others; no pixels kept."""
    digests: List[str] = [""] * len(folder.paths)
    bad = decode_each(len(folder.paths), load, lambda i, im: digests.__setitem__(
        i, cache.digest(im)), progress, desc="check")
    keep = np.setdiff1d(np.arange(len(folder.paths)), [i for i, _ in bad])
    return Stored(StreamImages(load, keep, size, channels), bad,
                  [digests[i] for i in keep], info)


class StreamImages:
    """An array-like over images decoded on access: `x[indices]` -> uint8 (n, H, W, C).

    Holds no pixels, so any process (a forked decoding worker) can index it."""

    dtype = np.dtype(np.uint8)

    def __init__(self, load: Callable[[int], np.ndarray], keep: np.ndarray, size, channels: int):
        self.load, self.keep = load, keep
        self.shape = (len(keep), int(size[0]), int(size[1]), channels)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self.load(int(self.keep[index]))
        picks = self.keep[index]
        out = np.empty((len(picks),) + self.shape[1:], np.uint8)
        for k, i in enumerate(picks):
            out[k] = self.load(int(i))
        return out


# data.storage -> how the images are kept: (folder, data cfg, i -> image, size, channels,
# storage.json record, progress) -> Stored
KEEP: Dict[str, Callable[..., Stored]] = {"memory": _in_memory, "cache": _from_cache,
                                          "stream": _streamed}


def load_files(root: Path, names: List[str], size, channels: int, progress: bool = False,
               cache_dir: str = "auto") -> np.ndarray:
    """uint8 (len(names), H, W, C) of image files under the folder `root`: rows of the
    folder's decoded cache when a sound one exists (a run's evaluation maps instead of
    decoding), else decoded (siamese.data.images.load_images)."""
    size = [int(v) for v in size]
    try:
        folder = scan_folder(root)
        key, path = _cache_file(folder, size, channels, cache_dir)
    except (UserError, OSError):
        folder, path = None, None
    if path is not None and path.is_file():
        opened = cache.open_cache(path, key, (len(folder.paths), *size, channels))
        if opened is not None:
            bad = {int(i) for i, _ in opened[1]["bad"]}
            row = {p: k for k, p in enumerate(p for i, p in enumerate(folder.paths)
                                              if i not in bad)}
            if all(n in row for n in names):
                log.info("decoded cache: mapped %s for %d images", path, len(names))
                return np.asarray(opened[0][[row[n] for n in names]])
    return load_images([Path(root) / n for n in names], size, channels, progress)
