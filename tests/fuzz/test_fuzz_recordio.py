"""RecordIO packs (siamese.data.recordio): `.rec`, `.idx` and `.lst`, fuzzed. Opening a pack
and decoding every image either works (the image a clean pack gives, or a UserError for that
image alone) or is a UserError (DamagedSource) naming the pack's file."""

from __future__ import annotations

import shutil
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from siamese.data.images import DamagedSource
from siamese.data.sources import item_loader, scan_source
from siamese.errors import UserError
from tests.fuzz.harness import Sandbox, budget, contract, mutations, write

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "rooms"
FILES = {s: (FIXTURE / f"pack{s}").read_bytes() for s in (".rec", ".idx", ".lst")}


def _open_and_decode(rec: Path):
    folder = scan_source(str(rec))
    load = item_loader(folder, (16, 16), 1)
    assert len(folder.paths) == len(folder.labels) and folder.classes
    images = []
    for i in range(len(folder.paths)):
        try:
            images.append(load(i))
        except DamagedSource:
            raise
        except UserError as e:  # one unreadable image: the run skips it, naming it
            assert str(rec) in str(e)
    return folder, images


@budget(90)
@given(st.sampled_from(sorted(FILES)).flatmap(
    lambda s: st.tuples(st.just(s), mutations(FILES[s], separators=b"\t" if s != ".rec"
                                              else b""))))
@example((".idx", b"0\t0\n1\t-8\n"))
@example((".idx", b"0\t99999999999999999999\n"))
@example((".lst", b"0\tnan\tclass0/000.png\n"))  # found by fuzzing
@example((".lst", b"\xb00\t0.000000\tclass0/000.png\n"))  # found by fuzzing: not UTF-8
def test_a_pack_with_one_damaged_file(case):
    suffix, data = case
    with Sandbox() as box:
        for s, valid in FILES.items():
            write(box.root / f"pack{s}", data if s == suffix else valid)
        rec = box.root / "pack.rec"
        contract("recordio packs", lambda: _open_and_decode(rec), box,
                 names=[box.root / "pack."], note=f"{suffix} {data[:120]!r}")


@budget(10)
@given(st.sampled_from([".idx", ".lst"]), st.sampled_from(["loop", "dir", "dangling"]))
def test_a_pack_whose_index_or_list_is_a_broken_symlink(suffix, link):
    with Sandbox() as box:
        for s, valid in FILES.items():
            write(box.root / f"pack{s}", valid, link if s == suffix else None)
        rec = box.root / "pack.rec"
        contract("recordio packs", lambda: _open_and_decode(rec), box,
                 names=[box.root / "pack."])


def test_the_clean_pack():
    with Sandbox() as box:
        shutil.copy(FIXTURE / "pack.rec", box.root)
        for s in (".idx", ".lst"):
            shutil.copy(FIXTURE / f"pack{s}", box.root)
        folder, images = _open_and_decode(box.root / "pack.rec")
        assert len(images) == 32 and folder.classes == ["class0", "class1", "class2", "class3"]
