"""The contract end to end: the tools, given fuzzed files, exit 0 or exit 2 with one line on
stderr (never a traceback), and write only where they write."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import eval as eval_py
import train
from siamese.commands import gallery as gallery_cmd
from tests.fuzz.harness import Sandbox, budget, contract, mutations, write
from tests.fuzz.test_fuzz_config import VALID as CONFIG
from tests.fuzz.test_fuzz_gallery import VALID as GALLERIES
from tests.fuzz.test_fuzz_pairfiles import CSV

ROOMS = Path(__file__).resolve().parents[1] / "fixtures" / "rooms"


def _exit(main, argv, box: Sandbox, writable) -> None:
    err = io.StringIO()

    def call():
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return main(argv)

    code = contract("command line", call, box, writable=writable, note=repr(argv))
    lines = [x for x in err.getvalue().splitlines() if not x[:2].isdigit()]  # log lines: time
    assert code in (0, 2), (code, err.getvalue()[-2000:])
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()[-2000:]
    assert "Traceback" not in err.getvalue()


@budget(15)
@given(mutations(CONFIG, separators=b": "))
def test_train_with_a_mutated_config(data):
    with Sandbox() as box:  # data.root: an empty folder, so nothing ever trains
        (box.root / "empty").mkdir()
        path = write(box.root / "c.yaml", data)
        _exit(train.main, [str(path), "--run-dir", str(box.root / "run"), "--set",
                           f"data.root={box.root / 'empty'}"], box, [box.root])


@budget(15)
@given(mutations(CSV))
def test_eval_with_a_mutated_pair_list(data):
    with Sandbox() as box:
        shutil.copytree(ROOMS / "run" / "export", box.root / "export")
        shutil.copytree(ROOMS / "images", box.root / "images")
        text = data.replace(b"A/", b"class0/").replace(b"B/", b"class1/")
        pairs = write(box.root / "pairs.csv", text)
        _exit(eval_py.main, [str(box.root / "export"), "--pairs", str(pairs), "--root",
                             str(box.root / "images"), "--out", str(box.root / "r.json")],
              box, [box.root])


@budget(10)
@given(st.sampled_from(GALLERIES).flatmap(lambda v: mutations(v, separators=b"")))
def test_gallery_query_with_a_damaged_gallery(data):
    with Sandbox() as box:
        shutil.copytree(ROOMS / "run", box.root / "run", ignore=shutil.ignore_patterns("*.ckpt"))
        path = write(box.root / "people.gallery", data)
        probe = ROOMS / "images" / "class0" / "000.png"
        _exit(gallery_cmd.main, ["query", str(path), str(probe), "--export",
                                 str(box.root / "run" / "export")], box, [box.root])
