"""Exports (siamese.formats.bundle, siamese.scoring.bundles): model.json, the symbol JSON and
the params file, fuzzed. Opening one and scoring a pair with it either works (finite scores) or is
a UserError naming the export; its files are read from the export folder only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from hypothesis import example, given
from hypothesis import strategies as st

from siamese.formats.bundle import fingerprint
from siamese.scoring.bundles import open_comparator
from tests.fuzz.harness import Sandbox, budget, contract, dumps, mutate_json, mutations, write

RUN = Path(__file__).resolve().parents[1] / "fixtures" / "rooms" / "run"
EXPORTS = [RUN / "export", RUN / "export-int8", RUN / "export-fused"]
META = {e.name: json.loads((e / "model.json").read_text()) for e in EXPORTS}
SYMBOL = json.loads((RUN / "export" / "branch-symbol.json").read_text())
PARAMS = (RUN / "export" / "branch-0000.params").read_bytes()


def _score(export: Path):
    comparator, meta = open_comparator(export, 4)
    fingerprint(export, meta)
    c, h, w = meta["input"]["shape"][1:]
    images = np.random.default_rng(0).integers(0, 255, (2, h, w, c), np.uint8)
    return comparator.score(images, [0], [1])


def _check(source: Path, edit) -> None:
    with Sandbox() as box:
        export = box.root / source.name
        shutil.copytree(source, export)
        edit(export)
        contract("exports", lambda: _score(export), box, names=[export],
                 note=repr(sorted(p.name for p in export.iterdir())))


@budget(60)
@given(st.sampled_from(EXPORTS).flatmap(lambda e: st.tuples(st.just(e), mutate_json(META[e.name]))))
@example((EXPORTS[0], dict(META["export"], files={"symbol": "../../secret/notes.txt",
                                                  "params": "branch-0000.params"})))
@example((EXPORTS[0], dict(META["export"], input=dict(META["export"]["input"],
                                                      shape=[-1, 1, 10 ** 6, 10 ** 6]))))
@example((EXPORTS[0], {k: v for k, v in META["export"].items() if k != "embedding_size"}))
@example((EXPORTS[0], dict(META["export"], score=dict(META["export"]["score"],
                                                      threshold=float("nan")))))
@example((EXPORTS[0], dict(META["export"], preprocess=dict(META["export"]["preprocess"],
                                                           mean=True))))
def test_an_edited_model_json(case):
    source, meta = case
    _check(source, lambda e: write(e / "model.json", dumps(meta)))


@budget(30)
@given(mutations(json.dumps(META["export"], indent=2).encode(), separators=b":,"))
def test_model_json_with_damaged_bytes(data):
    _check(EXPORTS[0], lambda e: write(e / "model.json", data))


@budget(40)
@given(mutate_json(SYMBOL))
def test_an_edited_symbol(symbol):
    _check(EXPORTS[0], lambda e: write(e / "branch-symbol.json", dumps(symbol)))


def _huge_dim(data: bytes) -> bytes:
    """The params with its first array's first dimension made 2**40 (found by fuzzing: such a
    file kept mx.nd.load busy past the time limit)."""
    return data[:36] + (2 ** 40).to_bytes(8, "little") + data[44:]


@budget(40)
@given(mutations(PARAMS, separators=b""))
@example(_huge_dim(PARAMS))
@example(PARAMS[:24] + (2 ** 40).to_bytes(8, "little") + PARAMS[32:])
def test_damaged_params(data):
    _check(EXPORTS[0], lambda e: write(e / "branch-0000.params", data))
