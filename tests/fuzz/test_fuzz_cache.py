"""The decoded cache (siamese.data.cache), fuzzed: its bytes, and (trailer checksum recomputed)
its JSON header. Opening a damaged cache never fails: it gives the images the clean cache holds,
or None (the caller rebuilds it), and it writes nothing."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
from hypothesis import given

from siamese.data.cache import _TAIL, MAGIC, build_cache, open_cache
from tests.fuzz.harness import ERROR, Sandbox, budget, contract, mutate_json, mutations, write

SHAPE = (6, 4, 4, 1)
IMAGES = np.random.default_rng(0).integers(0, 255, SHAPE, np.uint8)


def _valid() -> bytes:
    with Sandbox() as box:
        path = box.root / "k.u8"
        build_cache(path, "k", SHAPE, lambda i: IMAGES[i])
        return path.read_bytes()


VALID = _valid()
_LEN = struct.unpack("<Q", VALID[-_TAIL.size + 32:-8])[0]
PIXELS, META = VALID[:-_TAIL.size - _LEN], json.loads(VALID[-_TAIL.size - _LEN:-_TAIL.size])


def _resummed(meta) -> bytes:
    text = json.dumps(meta).encode()
    return PIXELS + text + _TAIL.pack(hashlib.sha256(text).digest(), len(text), MAGIC)


def _check(data: bytes):
    with Sandbox() as box:
        path = write(box.root / "k.u8", data)

        def opened():
            got = open_cache(path, "k", SHAPE)
            return None if got is None else np.array(got[0])

        got = contract("decoded cache", opened, box, note=repr(data[-200:]))
        assert got is not ERROR  # never an error: None means rebuild
        if got is not None:
            assert np.array_equal(got, IMAGES), "a damaged cache was used"


@budget(60)
@given(mutations(VALID, separators=b""))
def test_a_cache_with_damaged_bytes(data):
    _check(data)


@budget(80)
@given(mutate_json(META))
def test_a_cache_with_an_edited_header(meta):
    _check(_resummed(meta))


def test_headers_found_by_fuzzing_are_rebuilt_not_failed():
    for meta in (dict(META, shape=None), dict(META, digests=[]), {k: v for k, v in META.items()
                 if k != "bad"}, dict(META, bad=[[0]]), [1, 2]):
        _check(_resummed(meta))


def test_the_clean_cache_is_used():
    _check(VALID)
    assert _resummed(META) == VALID
