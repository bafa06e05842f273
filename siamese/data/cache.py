"""The decoded cache: a folder's (or pack's) images decoded and resized once, kept in one file
that later runs map instead of decoding again.

One file per (source fingerprint, image size, channels), `<cache_dir>/<key>.u8`:

    pixels     uint8 (N_good, H, W, C), C order, from byte 0 (so numpy maps it directly)
    meta       JSON: version, key, shape, the unreadable items [(index, message)], and the
               digest (siamese.formats.pairsets.image_digests) of every image
    sha256     32 bytes, of the JSON
    length     uint64 little-endian, of the JSON
    magic      8 bytes, b"SIAMCCH1"

Written through a temporary name and renamed (siamese.formats.atomic), so a crash leaves no
half file under the real name. On opening, the trailer, the JSON checksum, the file size and
every image's digest are checked (read with plain reads, so the check costs no resident
memory); any mismatch logs why and the cache is rebuilt, never used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import struct
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..formats.atomic import atomic_path
from .images import decode_each

log = logging.getLogger(__name__)

MAGIC = b"SIAMCCH1"
VERSION = 1
_TAIL = struct.Struct("<32sQ8s")  # sha256 of the JSON, its length, the magic
CHUNK_BYTES = 64 << 20  # bytes read at a time when checking digests


def default_dir() -> Path:
    """$XDG_CACHE_HOME/siamese, else ~/.cache/siamese."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "siamese"


def folder_fingerprint(root: Path, paths: Sequence[str]) -> list:
    """[path, size, modification time in ns] of every file: a changed, added or removed file
    changes it (a copied folder keeps it only if the copy keeps times, e.g. cp -p)."""
    out = []
    for p in paths:
        st = os.stat(root / p)
        out.append([p, st.st_size, st.st_mtime_ns])
    return out


def cache_key(fingerprint: list, size: Sequence[int], channels: int) -> str:
    """24 hex digits naming the cache file of these files at this size and colour."""
    text = json.dumps([VERSION, fingerprint, [int(v) for v in size], int(channels)])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def digest(image: np.ndarray) -> str:
    """The digest of one decoded image, as siamese.formats.pairsets.image_digests."""
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()[:16]


@contextlib.contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """One builder per cache file: other processes (distributed workers on one machine or a
    shared file system) wait here, then find the cache written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_meta(path: Path) -> Tuple[Optional[dict], str]:
    """(meta, "") of a sound trailer, or (None, why not)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            if size < _TAIL.size:
                return None, "shorter than its trailer"
            fh.seek(size - _TAIL.size)
            sha, length, magic = _TAIL.unpack(fh.read(_TAIL.size))
            if magic != MAGIC or length > size - _TAIL.size:
                return None, "no trailer (truncated or not a cache file)"
            fh.seek(size - _TAIL.size - length)
            text = fh.read(length)
    except OSError as e:
        return None, f"unreadable ({e.strerror or e})"
    if hashlib.sha256(text).digest() != sha:
        return None, "its header checksum does not match"
    try:
        meta = json.loads(text)
        why = _header_fault(meta)
    except (ValueError, RecursionError):
        meta, why = None, "its header is not JSON"
    if why:
        return None, why
    n, h, w, c = meta["shape"]
    if size != n * h * w * c + length + _TAIL.size:
        return None, "its size does not match its header"
    return meta, ""


def _header_fault(meta) -> str:
    """What is wrong with a header whose checksum matches (written by other code, or edited and
    re-summed: found by fuzzing, such a header failed with KeyError, TypeError or IndexError
    instead of being rebuilt); "" when it is sound."""
    def count(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    if not isinstance(meta, dict) or not isinstance(meta.get("shape"), list) or \
            len(meta["shape"]) != 4 or not all(count(v) for v in meta["shape"]):
        return "its header has no shape"
    bad, digests = meta.get("bad"), meta.get("digests")
    if not isinstance(bad, list) or not all(
            isinstance(b, list) and len(b) == 2 and count(b[0]) and isinstance(b[1], str)
            for b in bad):
        return "its header's list of unreadable images is damaged"
    if not isinstance(digests, list) or len(digests) != meta["shape"][0] or \
            not all(isinstance(d, str) for d in digests):
        return "its header's digests do not match its images"
    return ""


def check_pixels(path: Path, meta: dict) -> str:
    """"" when every image's digest matches the stored one, else which image differs."""
    n, h, w, c = meta["shape"]
    item = h * w * c
    per = max(1, CHUNK_BYTES // max(item, 1))
    buf = bytearray(per * item)
    with open(path, "rb") as fh:
        for start in range(0, n, per):
            k = min(per, n - start)
            view = memoryview(buf)[:k * item]
            if fh.readinto(view) != k * item:
                return "it ends early"
            for j in range(k):
                got = hashlib.sha256(view[j * item:(j + 1) * item]).hexdigest()[:16]
                if got != meta["digests"][start + j]:
                    return f"image {start + j} does not match its digest"
    return ""


def open_cache(path: Path, key: str, shape: Sequence[int]) -> Optional[Tuple[np.ndarray, dict]]:
    """(read-only mapped array (N_good, H, W, C), meta) of a sound cache file, else None (a
    damaged one is logged; the caller rebuilds it)."""
    if not path.is_file():
        return None
    meta, why = read_meta(path)
    if meta is not None and (meta.get("key") != key or meta["shape"][1:] != list(shape[1:])
                             or meta["shape"][0] + len(meta["bad"]) != shape[0]):
        meta, why = None, "it holds other images"
    if meta is not None:
        why = check_pixels(path, meta)
    if why:
        log.warning("decoded cache %s is damaged (%s): rebuilding it", path, why)
        return None
    n = meta["shape"][0]
    if n == 0:
        return np.zeros(meta["shape"], np.uint8), meta
    # a plain ndarray over the map: batches gathered from it are plain arrays, not memmaps
    return np.asarray(np.memmap(path, np.uint8, "r", 0, tuple(meta["shape"]))), meta


def build_cache(path: Path, key: str, shape: Sequence[int], load: Callable[[int], np.ndarray],
                progress: bool = False) -> Tuple[np.ndarray, dict]:
    """Decode items 0..N-1 with `load(i)` (a UserError marks an item unreadable) into a new
    cache file at `path`; returns it opened as by `open_cache`."""
    n = int(shape[0])
    item = int(np.prod(shape[1:]))
    digests: List[str] = [""] * n
    with atomic_path(path, what="write the decoded cache", keeps="no cache was written") as tmp:
        with open(tmp, "wb") as fh:
            fh.truncate(n * item)
        out = np.memmap(tmp, np.uint8, "r+", 0, tuple(shape)) if n else None

        def sink(i: int, image: np.ndarray) -> None:
            out[i] = image
            digests[i] = digest(image)

        bad = decode_each(n, load, sink, progress, desc="cache")
        keep = np.setdiff1d(np.arange(n), [i for i, _ in bad])
        for new, old in enumerate(keep):  # close the gaps of unreadable items
            if new != old:
                out[new] = out[old]
        if out is not None:
            out.flush()
            del out
        meta = {"version": VERSION, "key": key, "shape": [len(keep), *map(int, shape[1:])],
                "bad": [[int(i), m] for i, m in bad], "digests": [digests[i] for i in keep]}
        text = json.dumps(meta).encode()
        with open(tmp, "r+b") as fh:
            fh.truncate(len(keep) * item)
            fh.seek(len(keep) * item)
            fh.write(text + _TAIL.pack(hashlib.sha256(text).digest(), len(text), MAGIC))
    log.info("decoded cache written: %s (%d images, %.1f MB)", path, len(keep),
             path.stat().st_size / 1e6)
    opened = open_cache(path, key, shape)
    assert opened is not None, path
    return opened
