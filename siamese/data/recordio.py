"""MXNet RecordIO packs (`NAME.rec` + `NAME.idx`, and im2rec's `NAME.lst`), read and written in
plain Python so that any process (a decoding worker included) can open them.

The byte format is dmlc's: every record starts with the magic 0xced7230a and a uint32 whose
top 3 bits are a continuation flag and low 29 bits a length, its data padded to 4 bytes; a
record whose data holds the magic at a 4-byte boundary is split there (flags 1, 2, 3). A record
is MXNet's `recordio.pack`: an IRHeader (flag uint32, label float32, id uint64, id2 uint64),
`flag` further float32 labels when flag > 0, then the encoded image. The `.idx` lists
`key<TAB>offset`, the `.lst` `index<TAB>label<TAB>path` (im2rec).

insightface-style packs are read too: when record 0 carries a label vector (flag > 0) and no
image, its first label is one past the last image key; images are keys 1..that-1, the identity
records after them are skipped, and an image's class is its first label.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .images import DamagedSource

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_HEADER = struct.Struct("<IfQQ")  # IRHeader: flag, label, id, id2


def _split_at_magic(data: bytes) -> List[Tuple[int, bytes]]:
    """dmlc's writer: (flag, part) pieces of one record, cut where the magic sits at a 4-byte
    boundary (the magic itself is dropped; the reader puts it back)."""
    parts, start, pos = [], 0, data.find(_MAGIC_BYTES)
    while pos != -1 and pos + 4 <= (len(data) >> 2) << 2:
        if pos % 4 == 0:
            parts.append((1 if start == 0 else 2, data[start:pos]))
            start = pos + 4
        pos = data.find(_MAGIC_BYTES, pos + 1)
    parts.append((3 if start else 0, data[start:]))
    return parts


def encode_record(data: bytes) -> bytes:
    """The bytes of one record in a `.rec` file (header words, data, zero padding)."""
    out = []
    for flag, part in _split_at_magic(data):
        out += [_MAGIC_BYTES, struct.pack("<I", (flag << 29) | len(part)), part]
    pad = -len(out[-1]) % 4
    return b"".join(out) + b"\0" * pad


def pack_record(label: float, index: int, image: bytes) -> bytes:
    """MXNet's `recordio.pack(IRHeader(0, label, index, 0), image)`."""
    return _HEADER.pack(0, float(label), int(index), 0) + image


def unpack_record(record: bytes, where: str) -> Tuple[int, np.ndarray, bytes]:
    """(flag, labels float32 (max(flag, 1),), image bytes) of a record written by `pack`."""
    if len(record) < _HEADER.size:
        raise DamagedSource(f"{where}: record shorter than its header; the pack is damaged")
    flag, label, _, _ = _HEADER.unpack_from(record)
    body = record[_HEADER.size:]
    if flag == 0:
        return 0, np.array([label], np.float32), body
    if len(body) < 4 * flag:
        raise DamagedSource(f"{where}: record shorter than its {flag} labels; the pack is damaged")
    return flag, np.frombuffer(body[:4 * flag], np.float32).copy(), body[4 * flag:]


class RecordFile:
    """Random access to the records of a `.rec` by the offsets of its `.idx`.

    Positional reads (os.pread) on one descriptor per process: safe from decoding threads, and
    across fork (a worker opens its own)."""

    def __init__(self, rec: Path, offsets: Dict[int, int]):
        self.rec, self.offsets = Path(rec), offsets
        self.size = os.path.getsize(rec)
        self._fd, self._pid = -1, -1

    def _read(self, n: int, pos: int) -> bytes:
        if self._pid != os.getpid():
            self._fd, self._pid = os.open(self.rec, os.O_RDONLY), os.getpid()
        return os.pread(self._fd, n, pos)

    def read(self, key: int) -> bytes:
        """The data of record `key`; DamagedSource naming the pack when its bytes are damaged."""
        pos, parts = self.offsets[key], []
        while True:
            head = self._read(8, pos)
            if len(head) < 8 or head[:4] != _MAGIC_BYTES:
                raise DamagedSource(f"{self.rec}: record {key}: no record at offset {pos} (bad "
                                    f"magic or truncated file); the pack is damaged")
            word = struct.unpack("<I", head[4:])[0]
            flag, length = word >> 29, word & ((1 << 29) - 1)
            if pos + 8 + length > self.size:  # never ask pread for up to 512 MB the file lacks
                raise DamagedSource(f"{self.rec}: record {key} runs past the end of the file; "
                                    f"the pack is damaged (truncated)")
            data = self._read(length, pos + 8)
            if len(data) < length:
                raise DamagedSource(f"{self.rec}: record {key} runs past the end of the file; "
                                    f"the pack is damaged (truncated)")
            parts.append(data)
            pos += 8 + ((length + 3) >> 2 << 2)
            if flag in (0, 3):
                return _MAGIC_BYTES.join(parts)
            if flag not in (1, 2):
                raise DamagedSource(f"{self.rec}: record {key}: bad continuation flag {flag}; "
                                    f"the pack is damaged")


def read_idx(path: Path, rec_size: int) -> Dict[int, int]:
    """{key: offset} of an `.idx` file, each offset checked against the `.rec` size."""
    out: Dict[int, int] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DamagedSource(f"{path}: cannot read the pack's index ({e})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            key, offset = (int(v) for v in line.split("\t"))
        except ValueError:
            raise DamagedSource(f"{path}:{n}: expected key<TAB>offset, got {line[:60]!r}; the "
                            f"pack's index is damaged") from None
        if not 0 <= offset <= rec_size - 8:
            raise DamagedSource(f"{path}:{n}: offset {offset} lies outside the .rec ({rec_size} "
                            f"bytes); the pack is damaged or truncated")
        out[key] = offset
    if not out:
        raise DamagedSource(f"{path}: the pack's index lists no records")
    return out


def read_lst(path: Path) -> Dict[int, Tuple[float, str]]:
    """{index: (label, path)} of an im2rec `.lst` (`index<TAB>label...<TAB>path`)."""
    out = {}
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:  # not UTF-8: found by fuzzing
        raise DamagedSource(f"{path}: cannot read the pack's list ({e})") from None
    for n, line in enumerate(lines, 1):
        cols = line.split("\t")
        if len(cols) < 3:
            if line.strip():
                raise DamagedSource(f"{path}:{n}: expected index<TAB>label<TAB>path")
            continue
        try:
            label = float(cols[1])
            out[int(cols[0])] = (label, cols[-1])
        except ValueError:
            raise DamagedSource(f"{path}:{n}: expected index<TAB>label<TAB>path") from None
        if not np.isfinite(label):
            raise DamagedSource(f"{path}:{n}: label {cols[1]!r} is not a finite number")
    return out


@dataclass
class Pack:
    """An opened pack: its record file, and the record key of each image in folder order."""

    records: RecordFile
    keys: List[int]

    def image_bytes(self, i: int) -> bytes:
        """The encoded image of the i-th image (folder order)."""
        key = self.keys[i]
        return unpack_record(self.records.read(key), f"{self.records.rec} record {key}")[2]


def image_keys(records: RecordFile) -> List[int]:
    """The image records' keys: all of them, or 1..N-1 under an insightface header record."""
    keys = sorted(records.offsets)
    if keys[0] == 0:
        flag, labels, body = unpack_record(records.read(0), f"{records.rec} record 0")
        if flag > 0 and not body and len(labels) >= 2:
            last = int(labels[0])
            return [k for k in keys if 1 <= k < last]
    return keys


def open_pack(rec: Path) -> Tuple[Pack, List[str], np.ndarray, List[str]]:
    """(Pack, paths, labels, class names) of `NAME.rec` with `NAME.idx` beside it.

    Paths and class names come from `NAME.lst` when present (a class is named after the
    first folder of its images' paths when they share one), else `<key>` and the label.
    """
    rec = Path(rec)
    idx, lst = rec.with_suffix(".idx"), rec.with_suffix(".lst")
    if not rec.is_file() or not idx.is_file():
        raise DamagedSource(f"data.root: {rec}: a pack needs {rec.name} and {idx.name} side "
                            f"by side")
    records = RecordFile(rec, read_idx(idx, os.path.getsize(rec)))
    keys = image_keys(records)
    listed = read_lst(lst) if lst.is_file() else {}
    values = np.array([_label(records, k, listed) for k in keys], np.float64)
    paths = [listed[k][1] if k in listed else f"{k}" for k in keys]
    uniq, labels = np.unique(values, return_inverse=True)
    heads: List[set] = [set() for _ in uniq]
    for p, y in zip(paths, labels):
        heads[y].add(p.split("/")[0] if "/" in p else None)
    classes = [h.pop() if len(h) == 1 and None not in h else f"{v:g}"
               for h, v in zip(heads, uniq)]
    order = np.argsort(labels, kind="stable")  # class by class, as a folder lists them
    return (Pack(records, [keys[i] for i in order]), [paths[i] for i in order],
            labels[order].astype(np.int64), classes)


def _label(records: RecordFile, key: int, listed: dict) -> float:
    if key in listed:
        return listed[key][0]
    label = float(unpack_record(records.read(key), f"{records.rec} record {key}")[1][0])
    if not np.isfinite(label):
        raise DamagedSource(f"{records.rec}: record {key}: label {label} is not a finite number; "
                            f"the pack is damaged")
    return label


def pack_fingerprint(rec: Path) -> Optional[list]:
    """Sizes and modification times of the pack's files (for the decoded cache's key)."""
    rec = Path(rec)
    out = []
    for f in (rec, rec.with_suffix(".idx"), rec.with_suffix(".lst")):
        if f.is_file():
            st = f.stat()
            out.append([f.name, st.st_size, st.st_mtime_ns])
    return out
