"""Distributed runs that never hang: real processes (siamese.launch, a scheduler, a server and
two workers on 127.0.0.1), each test bounded well under a minute."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, make_folder, write_config

from siamese.errors import UserError
from siamese.formats import checkpoint
from siamese.train.resume import check_workers

pytestmark = pytest.mark.slow
LIMIT = 120  # seconds: a hang fails the test instead of stalling the suite (a loaded
# 2-core machine once took over 50 s for the sigterm test's first epoch)


def launch(tmp_path: Path, *command: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "siamese.launch", "--workers", "2", "--servers", "1",
           "--timeout", str(LIMIT), *command]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def config(tmp_path: Path, **train) -> Path:
    root = tmp_path / "img"
    if not root.exists():
        make_folder(root)
    return write_config(tmp_path / "c.yaml", root,
                        train={"epochs": 2, "pairs_per_epoch": 64, "batch_size": 8, **train})


def logs(run: Path) -> dict:
    return {p.stem: p.read_text() for p in (run / "launch-logs").glob("*.log")}


def digests(run: Path) -> list:
    return [line.split()[-1] for name in ("worker-0", "worker-1")
            for line in logs(run)[name].splitlines() if "final parameters sha256" in line]


def test_logs_go_to_the_run_directory(tmp_path):
    proc = launch(tmp_path, "train.py", str(config(tmp_path)), "--run-dir",
                  str(tmp_path / "run"))
    _, err = proc.communicate(timeout=LIMIT + 10)
    assert proc.returncode == 0, err
    assert {"scheduler", "server-0", "worker-0", "worker-1"} <= set(logs(tmp_path / "run"))
    assert f"logs in {tmp_path / 'run' / 'launch-logs'}" in err
    assert not (ROOT / "launch-logs").exists()


def test_a_non_finite_batch_on_one_worker_is_skipped_by_both(tmp_path):
    cfg = config(tmp_path, nonfinite="skip")
    run = tmp_path / "run"
    proc = launch(tmp_path, "tests/helpers/plant_nonfinite.py", str(cfg), "--run-dir", str(run))
    _, err = proc.communicate(timeout=LIMIT + 10)
    text = logs(run)
    assert proc.returncode == 0, (err, text.get("worker-0", "")[-1500:])
    # (which process gets rank 1 is the scheduler's choice)
    planted = [n for n in ("worker-0", "worker-1")
               if re.search(r"epoch 1, batch 2: non-finite (gradient|loss \(nan\)); batch "
                            r"skipped \(1 of", text[n])]
    other = [n for n in ("worker-0", "worker-1")
             if "epoch 1, batch 2: non-finite loss or gradient on another worker; batch "
                "skipped (1 of" in text[n]]
    assert len(planted) == 1 and len(other) == 1 and planted != other
    d = digests(run)
    assert len(d) == 2 and d[0] == d[1]  # both skipped the same step: identical weights
    assert json.loads((run / "metrics.json").read_text())["epochs_trained"] == 2


def test_a_non_finite_batch_on_one_worker_stops_both(tmp_path):
    cfg = config(tmp_path, nonfinite="stop")
    run = tmp_path / "run"
    proc = launch(tmp_path, "tests/helpers/plant_nonfinite.py", str(cfg), "--run-dir", str(run))
    _, err = proc.communicate(timeout=LIMIT + 10)
    text = logs(run)
    assert proc.returncode == 1, err
    for name in ("worker-0", "worker-1"):
        assert "the step was not applied" in text[name], name


def test_early_stopping_stops_every_worker(tmp_path):
    # A learning rate too small to change anything: validation never improves after epoch 1.
    cfg = config(tmp_path, epochs=6, patience=1, lr=1e-12)
    run = tmp_path / "run"
    proc = launch(tmp_path, "train.py", str(cfg), "--run-dir", str(run))
    _, err = proc.communicate(timeout=LIMIT + 10)
    assert proc.returncode == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stopped_early"] and metrics["epochs_trained"] == 2
    for name in ("worker-0", "worker-1"):
        assert "early stop after epoch 2" in logs(run)[name], name


def test_sigterm_to_one_worker_stops_all_with_a_checkpoint_and_resumes(tmp_path):
    cfg = config(tmp_path, epochs=3, pairs_per_epoch=480)
    run = tmp_path / "run"
    proc = launch(tmp_path, "train.py", str(cfg), "--run-dir", str(run))
    end = time.time() + LIMIT
    while not (run / "log.jsonl").exists():  # epoch 1 done: the signal lands in epoch 2
        assert time.time() < end and proc.poll() is None, proc.communicate()[1]
        time.sleep(0.05)
    pids = json.loads((run / "launch-logs" / "pids.json").read_text())
    os.kill(pids["worker-1"], signal.SIGTERM)
    _, err = proc.communicate(timeout=LIMIT)
    assert proc.returncode == 143, err
    assert f"--resume {run}" in err
    for name in ("worker-0", "worker-1"):
        assert "SIGTERM: stopped at epoch 2" in logs(run)[name], name
    meta = checkpoint.read(run / "checkpoints" / "last.ckpt")[0]
    assert meta["epoch"] == 1 and meta["batch"] > 0 and meta["workers"] == 2
    proc = launch(tmp_path, "train.py", "--resume", str(run))
    _, err = proc.communicate(timeout=LIMIT + 10)
    assert proc.returncode == 0, (err, logs(run).get("worker-0", "")[-1500:])
    epochs = [json.loads(x)["epoch"] for x in (run / "log.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    resumed = digests(run)
    # The same run without the interruption ends with the same weights.
    proc = launch(tmp_path, "train.py", str(cfg), "--run-dir", str(tmp_path / "whole"))
    _, err = proc.communicate(timeout=LIMIT + 10)
    assert proc.returncode == 0, err
    assert resumed == digests(tmp_path / "whole") and len(resumed) == 2


def test_resume_with_another_number_of_workers_is_refused():
    check_workers({"workers": 2}, 2, Path("last.ckpt"))
    with pytest.raises(UserError, match="trained by 2 worker.*not 1"):
        check_workers({"workers": 2}, 1, Path("last.ckpt"))
    check_workers({}, 1, Path("last.ckpt"))  # checkpoints before workers were recorded
