"""Batches from worker processes (data.workers): in order, the same for any number of workers,
and a killed worker stops the run with exit 1 and a message, never a hang."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, make_folder, write_config

from siamese.config import from_dict
from siamese.data.augment import Augment
from siamese.data.loaders import PairBatches, PKBatches
from siamese.data.prepare import prepare
from siamese.data.workers import WorkerDied, WorkerPool, in_workers


def square(x: int) -> tuple:
    return (np.array([x * x]), os.getpid())


def test_results_come_back_in_order_from_other_processes():
    out = list(in_workers(square, [(k,) for k in range(20)], 3))
    assert [int(a[0]) for a, _ in out] == [k * k for k in range(20)]
    assert os.getpid() not in {pid for _, pid in out}


def suicide(k: int):
    if k == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return k


def test_a_killed_worker_raises_worker_died():
    t0 = time.time()
    with pytest.raises(WorkerDied, match="data.workers: a batch-decoding worker process died"):
        list(in_workers(suicide, [(k,) for k in range(50)], 2))
    assert time.time() - t0 < 30


def data(tmp_path: Path, workers: int, **kw):
    root = make_folder(tmp_path / "images", classes=4, per_class=6)
    d = {"root": str(root), "image_size": 16, "val_pairs": 10, "test_pairs": 10,
         "val_fraction": 0.25, "test_fraction": 0.25, "workers": workers, **kw}
    return prepare(from_dict({"data": d}).data, seed=0)


def batches(source, epoch=0) -> list:
    return [[a.asnumpy() for a in b] for b in source.loader(epoch)]


@pytest.mark.parametrize("kind", ["pairs", "pk"])
def test_any_number_of_workers_gives_the_same_batches(tmp_path, kind):
    got = []
    for workers in (1, 2):
        d = data(tmp_path / str(workers), workers, augment_shift=2, storage="stream")
        src = PairBatches(d, 4, 24, Augment(shift=2), seed=5) if kind == "pairs" else \
            PKBatches(d, 2, 2, 16, Augment(shift=2), seed=5)
        got.append(batches(src))
    assert len(got[0]) == len(got[1]) > 1
    for a, b in zip(*got):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_each_distributed_worker_decodes_only_its_share(tmp_path):
    d = data(tmp_path, 0, storage="stream")
    seen = {}
    for rank in (0, 1):
        touched = []
        load = d.images.load
        d.images.load = lambda i, load=load, touched=touched: touched.append(i) or load(i)
        src = PairBatches(d, 4, 32, Augment(), seed=1, shard=(rank, 2))
        rows = src.rows(0, np.random.default_rng([1, 3, 0]))
        batches(src)
        d.images.load = load
        seen[rank] = touched
        assert sorted(touched) == sorted(d.images.keep[src.index[rows[:, :2].T.reshape(-1)]])
    assert len(seen[0]) == len(seen[1]) == 32  # 16 pairs each, two images a pair


def _children(pid: int) -> list:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


@pytest.mark.slow
def test_a_killed_worker_stops_training_with_exit_1(tmp_path):
    root = make_folder(tmp_path / "images", classes=4, per_class=10)
    cfg = write_config(tmp_path / "c.yaml", root, data={"storage": "stream", "workers": 1},
                       train={"epochs": 500, "pairs_per_epoch": 64})
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), str(cfg), "--run-dir",
                             str(tmp_path / "run")], stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not _children(proc.pid):
            time.sleep(0.1)
        victims = _children(proc.pid)
        assert victims, "no worker process appeared"
        os.kill(victims[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err[-2000:]
    assert "error: data.workers: a batch-decoding worker process died" in err


@pytest.mark.slow
def test_sigterm_with_workers_and_a_cache_then_resume_equals_an_uninterrupted_run(tmp_path):
    """Workers leave the signal to the trainer, which checkpoints; the resumed run replays the
    same per-batch augmentation and ends with every figure of an uninterrupted run."""
    import json

    import train

    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root,
                       data={"storage": "cache", "cache_dir": str(tmp_path / "cache"),
                             "workers": 2, "augment_shift": 2},
                       train={"epochs": 3, "pairs_per_epoch": 1600, "batch_size": 8})
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), str(cfg), "--run-dir",
                             str(tmp_path / "cut")], cwd=ROOT, stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    curves = tmp_path / "cut" / "curves.png"
    end = time.time() + 240
    while not curves.exists() and time.time() < end:
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    assert train.main(["--resume", str(tmp_path / "cut")]) == 0
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "whole")]) == 0
    clock = ("seconds", "examples_per_s", "train_seconds")

    def figures(run):
        rows = [{k: v for k, v in json.loads(x).items() if k not in clock}
                for x in (run / "log.jsonl").read_text().splitlines()]
        m = json.loads((run / "metrics.json").read_text())
        return rows, {k: v for k, v in m.items() if k not in clock}

    assert figures(tmp_path / "cut") == figures(tmp_path / "whole")
    assert len(figures(tmp_path / "cut")[0]) == 3


def _big_result(flag: str):
    out = np.ones(16_000_000, np.float32)  # 64 MB: tens of ms to send back
    Path(flag).touch()
    return out


def _kill_then_wait(pool: WorkerPool, flag: Path, delay: float) -> tuple:
    """Run 3 tasks, SIGKILL the worker `delay` s after the first result is ready to send;
    (what the consumer saw, seconds it took) or None when it still waits 60 s later (a
    hang; a loaded 2-core machine can take several seconds to start and reap a worker)."""
    outcome = []

    def consume():
        t = time.perf_counter()
        try:
            list(pool.map([(str(flag),)] * 3))
            outcome.append("finished")
        except WorkerDied:
            outcome.append("died")
        pool.close()
        outcome.append(time.perf_counter() - t)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    while not flag.exists():
        time.sleep(0.0002)
    time.sleep(delay)
    for p in list(pool.pool._processes.values()):
        os.kill(p.pid, signal.SIGKILL)
    thread.join(60)
    return None if thread.is_alive() else tuple(outcome)


@pytest.mark.slow
def test_a_worker_killed_while_sending_its_result_is_reported_not_waited_for(tmp_path):
    """Python's executor waits forever for the rest of a result whose sender died (CPython
    3.11; one kill in eight hung the pool before it polled its workers). Kills are spread over
    the time one result takes to arrive, measured first, so some land inside the send."""
    pool = WorkerPool(_big_result, 1)
    t = time.perf_counter()
    list(pool.map([(str(tmp_path / "first"),)]))
    send = time.perf_counter() - t
    pool.close()
    for k, delay in enumerate(np.linspace(0, send, 8)):
        got = _kill_then_wait(WorkerPool(_big_result, 1), tmp_path / f"f{k}", delay)
        assert got is not None, f"the pool hung on a worker killed {delay * 1000:.0f} ms in"
        assert got[0] in ("died", "finished") and got[1] < 60
