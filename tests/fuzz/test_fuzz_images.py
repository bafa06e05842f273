"""Image files (siamese.data.images): PNG, JPEG, GIF, BMP, TIFF and WebP bytes, fuzzed, and
PNG headers that declare any size."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from siamese.data.images import decode_bytes, load_image
from tests.fuzz.harness import ERROR, Sandbox, budget, contract, mutations, write


def _encoded(fmt: str, mode: str) -> bytes:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


VALID = [_encoded(f, m) for f, m in (("PNG", "L"), ("PNG", "RGB"), ("JPEG", "RGB"),
                                     ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "RGB"),
                                     ("WEBP", "RGB"), ("PNG", "RGBA"), ("PNG", "I;16"))]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int, depth: int, color: int) -> bytes:
    """A PNG whose header (with a correct checksum) declares this size, with a tiny body."""
    head = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", head) + \
        _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b"")


def _decode(data: bytes, channels: int):
    out = decode_bytes(data, (16, 16), channels, "pack record 7")
    assert out.shape == (16, 16, channels) and out.dtype == np.uint8
    return out


@budget(150)
@given(st.sampled_from(VALID).flatmap(mutations), st.sampled_from([1, 3]))
@example(png_declaring(100_000, 100_000, 8, 0), 1)
def test_mutated_image_bytes_decode_or_are_refused_naming_them(data, channels):
    with Sandbox() as box:
        contract("images", lambda: _decode(data, channels), box, names=["pack record 7"],
                 note=repr(data[:120]))


@budget(60)
@given(st.integers(0, 2 ** 31 - 1), st.integers(0, 2 ** 31 - 1), st.sampled_from([1, 8, 16]),
       st.sampled_from([0, 2, 3, 4, 6]))
@example(44_739_236, 1, 16, 2)  # found by fuzzing: MemoryError
def test_a_png_declaring_any_size(width, height, depth, color):
    with Sandbox() as box:
        data = png_declaring(width, height, depth, color)
        contract("images", lambda: _decode(data, 1), box, names=["pack record 7"],
                 note=f"{width}x{height} depth {depth} color {color}")


@budget(40)
@given(st.sampled_from(VALID).flatmap(mutations), st.sampled_from([None, "loop", "dir",
                                                                   "dangling"]))
def test_an_image_file(data, link):
    with Sandbox() as box:
        path = write(box.root / "a.png", data, link)

        def read():
            out = load_image(path, (16, 16), 3)
            assert out.shape == (16, 16, 3)
            return out

        got = contract("images", read, box, names=[path], note=repr(data[:120]))
        if got is not ERROR:  # the file and its bytes in memory decode alike
            assert np.array_equal(got, _decode(data, 3))
