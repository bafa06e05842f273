"""Run directories (siamese.formats.rundir, pairsets, siamese.train.resume): log.jsonl,
pairs/split.csv, pairs/digests.csv, metrics.json and config.yaml, fuzzed. A resume must cut the
log back or refuse; it writes in the run directory only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from siamese.formats.pairsets import read_digests, read_split_classes
from siamese.formats.rundir import RunDir
from siamese.train.resume import plan_resume, read_log, truncate_log
from tests.fuzz.harness import ERROR, Sandbox, budget, contract, mutations, write

RUN = Path(__file__).resolve().parents[1] / "fixtures" / "rooms" / "run"
LOG = (RUN / "log.jsonl").read_bytes()
SPLIT = (RUN / "pairs" / "split.csv").read_bytes()
DIGESTS = (RUN / "pairs" / "digests.csv").read_bytes()
METRICS = (RUN / "metrics.json").read_bytes()
CONFIG = (RUN / "config.yaml").read_bytes()


@budget(80)
@given(mutations(LOG, separators=b",:"), st.integers(0, 3))
@example(b"[" * 100_000 + b"\n", 1)  # found by fuzzing: RecursionError
@example(b'\xfb"epoch": 1}\n{"epoch": 2}\n', 1)  # found by fuzzing: UnicodeDecodeError
@example(b'{"epoch": NaN}\n{"epoch": 1e999}\n{"epoch": "1"}\n', 1)
def test_a_mutated_log_is_read_and_cut_back_without_failing(data, epoch):
    with Sandbox() as box:
        path = write(box.root / "log.jsonl", data)

        def read_and_cut():
            rows = read_log(path)
            assert all(isinstance(r, dict) for r in rows)
            truncate_log(path, epoch)
            return read_log(path)

        rows = contract("run directories", read_and_cut, box, names=[path], writable=[box.root],
                        note=repr(data[:200]))
        if rows is not ERROR:
            assert all(not isinstance(r.get("epoch"), (int, float)) or r["epoch"] <= epoch
                       or r["epoch"] != r["epoch"] for r in rows)


@budget(60)
@given(mutations(SPLIT))
@example(b"\xf0ath,class,split,labeled\n")  # found by fuzzing: UnicodeDecodeError
def test_a_mutated_split_file(data):
    with Sandbox() as box:
        path = write(box.root / "split.csv", data)
        got = contract("run directories", lambda: read_split_classes(path), box, names=[path],
                       note=repr(data[:200]))
        if got is not ERROR:
            assert {"train", "val", "test"} <= set(got)


@budget(60)
@given(mutations(DIGESTS))
@example(b"path,digest\nclass0/000.png\n")  # found by fuzzing: a None digest
def test_a_mutated_digest_file(data):
    with Sandbox() as box:
        path = write(box.root / "digests.csv", data)
        got = contract("run directories", lambda: read_digests(path), box, names=[path],
                       note=repr(data[:200]))
        if got is not ERROR:
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in got.items())


@budget(40)
@given(mutations(METRICS, separators=b":,"))
@example(b"[" * 100_000)  # found by fuzzing: RecursionError
def test_mutated_metrics(data):
    with Sandbox() as box:
        write(box.root / "metrics.json", data)
        got = contract("run directories", lambda: RunDir(box.root).read_metrics(), box)
        assert isinstance(got, dict)


@budget(40)
@given(mutations(CONFIG, separators=b": "), st.booleans())
def test_resuming_a_run_with_a_mutated_config_and_no_checkpoint(data, pairs):
    """A run killed before its first checkpoint: plan_resume restarts it from its saved config,
    or refuses naming config.yaml; it reads nothing outside and writes only in the run."""
    with Sandbox() as box:
        run = RunDir(box.root / "run")
        run.checkpoints.mkdir(parents=True)
        shutil.copytree(RUN / "pairs", run.pairs)
        if not pairs:
            shutil.rmtree(run.pairs)
        write(run.config, data.replace(b"root: images", f"root: {box.root}".encode()))
        got = contract("run directories", lambda: plan_resume(run.root, None, []), box,
                       names=[run.config, run.root, "--set"], writable=[run.root],
                       note=repr(data[:200]))
        if got is not ERROR:
            cfg, again, resume = got
            assert resume is None and again.root == run.root
            assert json.dumps(cfg.train.epochs)
