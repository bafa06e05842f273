"""Pair lists, CSV and LFW pairs.txt (siamese.data.pairfiles), fuzzed."""

from __future__ import annotations

import os

from hypothesis import example, given
from hypothesis import strategies as st

from siamese.data.pairfiles import outside, read_pair_file
from tests.fuzz.harness import ERROR, Sandbox, budget, contract, mutations, png, write

CSV = (b"left,right,label\nA/0.png,A/1.png,1\nB/0.png,B/1.png,1\nA/0.png,B/0.png,0\n"
       b"A/1.png,B/1.png,0\n")
LFW = b"1\t2\nA\t1\t2\nB\t1\t2\nA\t1\tB\t1\nA\t2\tB\t2\n"


def _images(box: Sandbox) -> None:
    for c in "AB":
        (box.root / c).mkdir()
        for k in range(2):
            (box.root / c / f"{k}.png").write_bytes(png(10 * k))
    os.symlink(box.secret, box.dir / "elsewhere")  # a way out, for paths that try


def _read(path, root):
    pairs = read_pair_file(path, root)
    for p in pairs.left + pairs.right:  # what is read stays under the root, and exists
        assert not outside(p) and (root / p).is_file(), p
    assert set(pairs.labels.tolist()) == {0, 1}
    return pairs


def _check(data: bytes, link=None):
    with Sandbox() as box:
        _images(box)
        path = write(box.root / "pairs.txt", data, link)
        return contract("pair lists", lambda: _read(path, box.root), box,
                        names=[path, "--root"], note=repr(data[:200]))


@budget(80)
@given(mutations(CSV))
@example(b"left,right,label\nA/0.png,A/1.png,1\n\x00\n")
@example(b"left,right,label\n\"A/0.png\n")
@example(b"left,right,label" + b"a" * 140_000 + b"\n")  # found by fuzzing: csv.Error
def test_a_mutated_csv_pair_list(data):
    _check(data)


@budget(80)
@given(mutations(LFW, separators=b"\t"))
@example(b"1\t2\nA\t1\t2\nB\t1\t2\nA\t1\tB\t1\n..\t1\tB\t2\n")
@example(b"1 1\nA\x00 1 2\nA 1 B 1\n")
@example(b"1\t2" + b"9" * 5000 + b"\n")  # found by fuzzing: int() limit
@example(b"1\t1\nA\t1\t2" + b"9" * 5000 + b"\nA\t1\tB\t1\n")  # found by fuzzing: int() limit
@example("1\t1\nA\t1\t\u00b2\nA\t1\tB\t1\n".encode())  # "²".isdigit()
@example(b"1\t1\n" + b"x" * 5000 + b"\t1\t2\nA\t1\tB\t1\n")  # found by fuzzing: name too long
def test_a_mutated_lfw_pair_list(data):
    _check(data)


@budget(10)
@given(st.sampled_from(["loop", "dir", "dangling"]))
def test_a_pair_list_that_is_a_broken_symlink(link):
    assert _check(b"", link) is ERROR


def test_equivalent_spellings_give_the_clean_result():
    for valid in (CSV, LFW):
        clean = _check(valid)
        for same in (valid.replace(b"\n", b"\r\n"), valid + b"\n\n"):
            got = _check(same)
            assert (got.left, got.right, got.labels.tolist()) == \
                (clean.left, clean.right, clean.labels.tolist())
