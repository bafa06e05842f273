"""Galleries and their FAISS index (siamese.formats.gallery, siamese.identification.search),
fuzzed: the file's bytes, and (rewritten as a sound file, checksum recomputed) its header and
arrays, the stored index's bytes included. Reading one and ranking probes against it either
works (identities that exist) or is a UserError naming the gallery."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from siamese.formats.gallery import ARRAYS, Gallery, checksum, read_gallery, write_gallery
from siamese.identification.enroll import gallery_index
from siamese.identification.ranking import rank_identities
from siamese.identification.search import build_index, serialize
from tests.fuzz.harness import ERROR, Sandbox, budget, contract, mutate_json, mutations, write

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "rooms" / "people.gallery"
SPEC = {"name": "euclidean", "higher_is_similar": False, "threshold": 0.5}


def _indexed() -> bytes:
    """The fixture gallery with a stored FAISS flat index."""
    import tempfile

    g = read_gallery(FIXTURE)
    g.index = serialize(build_index(g.embeddings, SPEC, "flat"))
    g.header["index"] = {"kind": "flat", "score": "euclidean"}
    with tempfile.TemporaryDirectory() as d:
        write_gallery(Path(d) / "g.gallery", g)
        return (Path(d) / "g.gallery").read_bytes()


VALID = [FIXTURE.read_bytes(), _indexed()]


def _arrays(data: bytes) -> dict:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _use(path: Path):
    g = read_gallery(path)
    probes = np.random.default_rng(0).normal(size=(3, g.embeddings.shape[1])).astype(np.float32)
    ranked = rank_identities(gallery_index(g, SPEC), g.embeddings, g.labels, SPEC, probes, 2)
    assert ((ranked.ids >= -1) & (ranked.ids < len(g.identities))).all()
    return g


@st.composite
def rewritten(draw) -> bytes:
    arrays = _arrays(draw(st.sampled_from(VALID)))
    header = json.loads(str(arrays.pop("header")))
    if draw(st.booleans()):
        header = draw(mutate_json(header))
    for _ in range(draw(st.integers(0, 2))):
        k = draw(st.sampled_from(sorted(arrays)))
        op = draw(st.sampled_from(["drop", "shape", "nan", "dtype", "bytes", "labels"]))
        if op == "drop":
            del arrays[k]
        elif op == "shape":
            arrays[k] = arrays[k].reshape(-1)[: draw(st.integers(0, 40))]
        elif op == "nan":
            arrays[k] = np.full(arrays[k].shape, np.nan, np.float32)
        elif op == "dtype":
            with contextlib.suppress(ValueError):  # names do not become numbers
                arrays[k] = arrays[k].astype(draw(st.sampled_from(["float64", "int8", "U2"])))
        elif op == "bytes" and k == "index" or op == "bytes" and "index" in arrays:
            blob = bytes(arrays["index"])
            arrays["index"] = np.frombuffer(draw(mutations(blob, separators=b"")), np.uint8)
        elif "labels" in arrays:
            arrays["labels"] = np.full(arrays["labels"].shape, draw(st.sampled_from(
                [-1, 4, 2 ** 40])), np.int64)
    try:
        if all(k in arrays for k in ARRAYS) and isinstance(header, dict):
            header["checksum"] = checksum(arrays)
        buf = io.BytesIO()
        np.savez(buf, header=np.asarray(json.dumps(header)), **arrays)
        return buf.getvalue()
    except (ValueError, TypeError):
        return VALID[0]


def _check(data: bytes):
    with Sandbox() as box:
        path = write(box.root / "people.gallery", data)
        return contract("galleries", lambda: _use(path), box, names=[path],
                        note=repr(data[:80]))


@budget(40)
@given(st.sampled_from(VALID).flatmap(lambda v: mutations(v, separators=b"")))
def test_a_gallery_with_damaged_bytes(data):
    _check(data)


@budget(80)
@given(rewritten())
def test_a_gallery_with_edited_header_or_arrays(data):
    _check(data)


def test_a_sound_gallery_ranks():
    for data in VALID:
        assert isinstance(_check(data), Gallery)


def _resummed(**arrays) -> bytes:
    base = _arrays(VALID[1])
    header = json.loads(str(base.pop("header")))
    base.update(arrays)
    header["checksum"] = checksum(base)
    buf = io.BytesIO()
    np.savez(buf, header=np.asarray(json.dumps(header)), **base)
    return buf.getvalue()


def test_galleries_found_by_fuzzing_are_refused_naming_the_file():
    index = _arrays(VALID[1])["index"]
    for data in (_resummed(index=index[:len(index) // 2]),  # FAISS RuntimeError
                 _resummed(labels=np.full(32, 7, np.int64)),  # IndexError
                 _resummed(embeddings=np.zeros((31, 8), np.float32)),
                 _resummed(paths=np.zeros(32))):
        assert _check(data) is ERROR
