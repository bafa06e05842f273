"""A run killed before its first checkpoint (while decoding, before or after it saved its
config) resumes: it starts again from the beginning and ends with the uninterrupted figures."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import train
from siamese.formats.rundir import RunDir
from tests.conftest import ROOT, make_folder, write_config

pytestmark = pytest.mark.slow

CLOCK = ("seconds", "examples_per_s", "train_seconds")


def figures(run: Path) -> tuple:
    rows = [{k: v for k, v in json.loads(x).items() if k not in CLOCK}
            for x in (run / "log.jsonl").read_text().splitlines()]
    metrics = {k: v for k, v in json.loads((run / "metrics.json").read_text()).items()
               if k not in CLOCK}
    return rows, metrics


@pytest.fixture(scope="module")
def slow_to_decode(tmp_path_factory):
    """2400 real 64x64 PNGs (decoding takes ~1-2 s on 2 cores) and a short config; with the
    figures of an uninterrupted run of it."""
    tmp = tmp_path_factory.mktemp("early")
    root = make_folder(tmp / "img", classes=6, per_class=400, size=64)
    cfg = write_config(tmp / "c.yaml", root, train={"epochs": 2, "pairs_per_epoch": 64})
    assert train.main([str(cfg), "--run-dir", str(tmp / "whole")]) == 0
    return cfg, figures(tmp / "whole")


def test_killed_during_its_first_decoding_resumes_to_the_uninterrupted_figures(
        slow_to_decode, tmp_path, capsys):
    cfg, whole = slow_to_decode
    run = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), str(cfg), "--run-dir",
                             str(run)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    end = time.time() + 120
    while not (run / "config.yaml").is_file():  # fit saves the config, then decodes
        assert time.time() < end and proc.poll() is None
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert " data: " not in (run / "train.log").read_text()  # killed while decoding
    assert not list((run / "checkpoints").glob("*.ckpt"))
    assert train.main(["--resume", str(run)]) == 0
    err = capsys.readouterr().err
    assert "no checkpoint yet (stopped before the first one); starting it again from the " \
           "beginning with its saved config" in err
    assert figures(run) == whole


def test_every_instant_before_the_first_checkpoint(slow_to_decode, tmp_path, capsys):
    """The states a kill can leave before the first checkpoint, made by a real run's files."""
    cfg, whole = slow_to_decode
    # Killed before config.yaml was saved: only the empty folders prepare_run_dir made.
    run = RunDir(tmp_path / "bare")
    run.checkpoints.mkdir(parents=True)
    run.pairs.mkdir()
    (run.checkpoints / ".last.ckpt.tmp-1").write_bytes(b"half")
    assert train.main(["--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {run}: not a run directory (no config.yaml); it was stopped before "
                   f"it saved its config: start it with python train.py CONFIG --resume {run}")
    assert train.main([str(cfg), "--resume", str(run)]) == 0
    assert "stopped before it saved its config; starting it from the beginning" in \
        capsys.readouterr().err
    assert figures(run.root) == whole
    # Killed after the pairs, digests and storage were written, with a half checkpoint: the
    # finished run's files, cut back to that moment.
    for name in ("log.jsonl", "metrics.json", "curves.png"):
        (run / name).unlink()
    import shutil

    shutil.rmtree(run.export)
    for f in run.checkpoints.glob("*.ckpt"):
        f.rename(f.with_name(f".{f.name}.tmp-99"))
    (run.pairs / "val.csv").write_text("left,right,label\nhalf")
    assert train.main(["--resume", str(run)]) == 0
    assert figures(run.root) == whole
    # A finished run whose checkpoints were deleted is not started again (its export stays).
    for f in run.checkpoints.glob("*.ckpt"):
        f.unlink()
    capsys.readouterr()
    assert train.main(["--resume", str(run)]) == 2
    assert "a finished run without checkpoints" in capsys.readouterr().err
    assert (run.export / "model.json").is_file()
    # Killed before even the folder was made: started with the config given, else refused.
    gone = tmp_path / "gone"
    capsys.readouterr()
    assert train.main(["--resume", str(gone)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {gone}: no such run directory"
    assert train.main([str(cfg), "--resume", str(gone)]) == 0
    assert figures(gone) == whole
    # A folder that is not a run and was never one is still refused, without the hint.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert train.main([str(cfg), "--resume", str(tmp_path / "other")]) == 2
    assert capsys.readouterr().err.strip().endswith("not a run directory (no config.yaml)")
