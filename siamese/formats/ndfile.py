"""Check an MXNet `.params` file (NDArray list) before MXNet reads it.

`mx.nd.load` trusts the lengths written in the file: a damaged one made it run for minutes or
allocate without end (found by fuzzing the exports). This walks the layout MXNet 1.x writes
(`NDArray::Save` of a list, dense arrays) and checks every length against the bytes that are
there; it reads nothing but the file's bytes and builds no array.

    uint64 0x112, uint64 0, uint64 N            the list header
    N times: uint32 magic (0xF993FAC9 / 0xF993FACA), int32 storage type (0 = dense),
             uint32/int32 ndim, int64 dims[ndim], int32 dev_type, int32 dev_id,
             int32 dtype flag, the data (prod(dims) * item size bytes)
    uint64 K (0 or N), K times: uint64 length, the name's bytes
"""

from __future__ import annotations

import struct
from pathlib import Path

from ..errors import UserError

LIST_MAGIC = 0x112
ARRAY_MAGICS = (0xF993FAC9, 0xF993FACA)
ITEM_BYTES = {0: 4, 1: 8, 2: 2, 3: 1, 4: 4, 5: 1, 6: 8, 7: 1, 12: 2}  # mshadow type flags


class _Reader:
    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            self.fail(f"ends inside a header at byte {self.pos}")
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return out

    def skip(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > len(self.data):
            self.fail(f"{what} of {n} bytes at byte {self.pos} runs past the end "
                      f"({len(self.data)} bytes)")
        self.pos += n

    def fail(self, why: str):
        raise UserError(f"{self.path}: not a readable MXNet parameter file ({why})")


def check_params_file(path: Path) -> None:
    """UserError naming `path` unless it is a whole, dense NDArray list file."""
    try:
        r = _Reader(Path(path).read_bytes(), Path(path))
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    magic, _, n = r.take("<QQQ")
    if magic != LIST_MAGIC:
        r.fail("no NDArray list header")
    if n > len(r.data) // 16:
        r.fail(f"says {n} arrays")
    for k in range(n):
        _array(r, k)
    (names,) = r.take("<Q")
    if names not in (0, n):
        r.fail(f"{names} names for {n} arrays")
    for _ in range(names):
        (length,) = r.take("<Q")
        r.skip(length, "a name")
    if r.pos != len(r.data):
        r.fail(f"{len(r.data) - r.pos} bytes after the last name")


def _array(r: _Reader, k: int) -> None:
    magic, stype = r.take("<Ii")
    if magic not in ARRAY_MAGICS:
        r.fail(f"array {k}: bad magic {magic:#x}")
    if stype != 0:
        r.fail(f"array {k}: storage type {stype} (only dense arrays are read)")
    (ndim,) = r.take("<i")
    if ndim <= 0:
        if ndim < -1:
            r.fail(f"array {k}: {ndim} dimensions")
        return
    if ndim > 32:
        r.fail(f"array {k}: {ndim} dimensions")
    dims = r.take(f"<{ndim}q")
    if any(d < 0 for d in dims):
        r.fail(f"array {k}: shape {dims}")
    _, _, flag = r.take("<iii")
    if flag not in ITEM_BYTES:
        r.fail(f"array {k}: unknown dtype flag {flag}")
    size = ITEM_BYTES[flag]
    for d in dims:
        size *= d
        if size > len(r.data):
            r.fail(f"array {k}: shape {dims} is larger than the file")
    r.skip(size, f"array {k}'s data")
