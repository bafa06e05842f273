"""Runs that survive: real processes killed and signalled, corrupt files, NaN, messy folders."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, make_folder, write_config
from PIL import Image

import train
from siamese.errors import UserError
from siamese.formats import checkpoint
from siamese.train.resume import newest_checkpoint

pytestmark = pytest.mark.slow

# Long enough epochs (~0.5-1 s each on 2 cores) for a signal to land in the middle of a run.
LONG = {"epochs": 3, "pairs_per_epoch": 2400, "batch_size": 8}


def start_training(cfg: Path, run_dir: Path, *sets: str, **env) -> subprocess.Popen:
    args = [sys.executable, str(ROOT / "train.py"), str(cfg), "--run-dir", str(run_dir)]
    for s in sets:
        args += ["--set", s]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **env})


def wait_for(path: Path, timeout: float = 240.0) -> None:
    end = time.time() + timeout
    while not (path.exists() and path.stat().st_size > 0):
        assert time.time() < end, f"{path} did not appear"
        time.sleep(0.05)


def figures(run: Path) -> tuple:
    """Every logged figure of a run but the clock's: log.jsonl rows and metrics.json."""
    clock = ("seconds", "examples_per_s", "train_seconds")
    rows = [{k: v for k, v in json.loads(x).items() if k not in clock}
            for x in (run / "log.jsonl").read_text().splitlines()]
    metrics = {k: v for k, v in json.loads((run / "metrics.json").read_text()).items()
               if k not in clock}
    return rows, metrics


def test_sigterm_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root, train=LONG)
    proc = start_training(cfg, tmp_path / "cut")
    wait_for(tmp_path / "cut" / "curves.png")  # epoch 1 done, its end drawn: stop in epoch 2
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Resume with: python train.py --resume" in err
    meta = checkpoint.read(tmp_path / "cut" / "checkpoints" / "last.ckpt")[0]
    assert meta["epoch"] == 1 and meta["batch"] > 0  # in the middle of epoch 2
    assert not (tmp_path / "cut" / "metrics.json").exists()

    assert train.main(["--resume", str(tmp_path / "cut")]) == 0
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "whole")]) == 0
    # Same pairs, same order, same optimizer state, deterministic CPU kernels for a fixed
    # thread count: every logged figure is equal, not merely close.
    cut, whole = figures(tmp_path / "cut"), figures(tmp_path / "whole")
    assert len(cut[0]) == 3
    assert cut == whole


def test_a_signal_before_the_first_step_exits_cleanly(tmp_path):
    # Enough images that decoding takes a while: the signal lands while loading or building.
    root = make_folder(tmp_path / "img", classes=6, per_class=400, size=64)
    cfg = write_config(tmp_path / "c.yaml", root)
    for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        run = tmp_path / f"run{code}"
        proc = start_training(cfg, run)
        wait_for(run / "config.yaml")  # the run directory exists: loading has begun
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == code, err
        assert "stopped outside the training loop" in err and "Traceback" not in err
        assert not list((run / "checkpoints").glob("*.ckpt"))


def test_sigint_exits_130_with_a_checkpoint(tmp_path):
    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root, train=LONG)
    proc = start_training(cfg, tmp_path / "a")
    wait_for(tmp_path / "a" / "curves.png")  # epoch 1 done, its end drawn: stop in epoch 2
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Resume with" in err
    assert checkpoint.read(tmp_path / "a" / "checkpoints" / "last.ckpt")[0]["batch"] > 0


def test_a_second_sigint_exits_at_once_without_the_checkpoint(tmp_path):
    root = make_folder(tmp_path / "img", classes=4, per_class=40, size=32)
    # Steps of ~0.1 s: the second signal lands inside the step the first one lets finish.
    cfg = write_config(tmp_path / "c.yaml", root, data={"image_size": 32},
                       train={"epochs": 3, "pairs_per_epoch": 20000, "batch_size": 256})
    proc = start_training(cfg, tmp_path / "b")
    wait_for(tmp_path / "b" / "checkpoints" / "last.ckpt")  # epoch 1 and its checkpoints done
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "b" / "checkpoints").iterdir()}
    proc.send_signal(signal.SIGINT)
    while "finishing this step" not in proc.stderr.readline():  # the first one is handled
        assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "second interrupt: exiting now" in err and "Resume with" not in err
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "b" / "checkpoints").iterdir()}
    assert after == before  # no checkpoint of the interrupted step: it never finished
    for f in (tmp_path / "b" / "checkpoints").glob("*.ckpt"):
        checkpoint.read(f)


def test_kill_9_at_random_moments_leaves_a_resumable_run(tmp_path):
    root = make_folder(tmp_path / "img")
    # Many short epochs: checkpoints are written every ~0.1 s, so kills land near writes.
    cfg = write_config(tmp_path / "c.yaml", root,
                       train={"epochs": 1000, "pairs_per_epoch": 64, "batch_size": 8})
    run_dir = tmp_path / "run"
    rng = random.Random(0)
    proc = start_training(cfg, run_dir)
    wait_for(run_dir / "checkpoints" / "last.ckpt")
    proc.kill()
    proc.wait()
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "--resume",
                                 str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(2.5, 4.0))  # start-up is ~2 s, then epochs tick
        proc.kill()
        proc.wait()
        names = [p.name for p in (run_dir / "checkpoints").iterdir()]
        for name in names:
            if name.endswith(".ckpt"):
                checkpoint.read(run_dir / "checkpoints" / name)  # never a half file
        newest_checkpoint(run_dir)
    _, meta = newest_checkpoint(run_dir)
    total = meta["epoch"] + 2
    assert train.main(["--resume", str(run_dir), "--set", f"train.epochs={total}"]) == 0
    epochs = [json.loads(x)["epoch"] for x in (run_dir / "log.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, total + 1))  # cut back to each checkpoint: no repeats


def test_corrupt_newest_checkpoint_falls_back_and_none_good_is_exit_2(trained_run, tmp_path,
                                                                      caplog, capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run[0], run_dir)
    (run_dir / "metrics.json").unlink()
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated
    path, meta = newest_checkpoint(run_dir)
    assert path.name == "epoch-0002.ckpt" and meta["epoch"] == 2
    assert "instead of" in caplog.text and "last.ckpt" in caplog.text
    for f in (run_dir / "checkpoints").glob("*.ckpt"):
        f.write_bytes(b"garbage")
    assert train.main(["--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "no readable checkpoint" in err and "last.ckpt" in err


def test_resume_refuses_unsafe_changes_and_changed_data(tmp_path, capsys):
    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root)
    run_dir = tmp_path / "run"
    assert train.main([str(cfg), "--run-dir", str(run_dir)]) == 0
    assert train.main(["--resume", str(run_dir), "--set", "model.embedding_size=4"]) == 2
    assert "--set model.embedding_size: cannot change when resuming" in capsys.readouterr().err
    assert train.main(["--resume", str(run_dir)]) == 2  # finished, epochs unchanged
    assert "already finished 2 epochs" in capsys.readouterr().err
    other = write_config(tmp_path / "other.yaml", root, loss={"margin": 0.5})
    assert train.main([str(other), "--resume", str(run_dir), "--set", "train.epochs=3"]) == 2
    assert "loss.margin: the config file says 0.5" in capsys.readouterr().err
    # The folder changed since the run started: refused, naming the folder.
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "class0" / "zzz.png")
    assert train.main(["--resume", str(run_dir), "--set", "train.epochs=3"]) == 2
    assert "class0/zzz.png: changed since the run started" in capsys.readouterr().err
    (root / "class0" / "zzz.png").unlink()
    assert train.main(["--resume", str(run_dir), "--set", "train.epochs=3"]) == 0
    assert len((run_dir / "log.jsonl").read_text().splitlines()) == 3


def test_nan_stops_before_the_step_or_skips_up_to_a_limit(tmp_path, capsys):
    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root)
    blow_up = ["--set", "train.lr=1e38", "--set", "train.optimizer=sgd"]
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "a"), *blow_up]) == 1
    err = capsys.readouterr().err
    assert "epoch 1, batch 2: non-finite" in err and "the step was not applied" in err
    assert not list((tmp_path / "a" / "checkpoints").glob("*.ckpt"))
    skip = ["--set", "train.nonfinite=skip", "--set", "train.max_skipped_batches=2"]
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "b"), *blow_up, *skip]) == 1
    assert "more than train.max_skipped_batches=2" in capsys.readouterr().err


def messy_folder(tmp_path: Path) -> Path:
    root = make_folder(tmp_path / "messy", classes=3, per_class=8)
    good = (root / "class0" / "000.png").read_bytes()
    (root / "class0" / "empty.png").write_bytes(b"")
    (root / "class0" / "cut.png").write_bytes(good[: len(good) // 2])
    jpg = root / "class1" / "photo.jpg"
    Image.open(root / "class1" / "000.png").convert("RGB").resize((64, 64)).save(jpg, quality=95)
    jpg.write_bytes(jpg.read_bytes()[:-400])  # truncated JPEG: must not decode to black
    (root / "class1" / "notes.png").write_text("this is text, not a PNG")
    (root / "class1" / "labels.txt").write_text("ignored: not an image extension")
    (root / "class1" / "png_named.jpg").write_bytes(good)  # wrong extension but readable
    (root / "class2" / ".hidden.png").write_bytes(b"hidden")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.png").write_bytes(good)
    (root / "empty_class").mkdir()
    (root / "single").mkdir()
    (root / "single" / "only.png").write_bytes(good)
    return root


def test_messy_folder_skip_and_error_policies(tmp_path, capsys):
    from siamese.data.images import load_image

    root = messy_folder(tmp_path)
    with pytest.raises(UserError, match="photo.jpg: cannot read image"):
        load_image(root / "class1" / "photo.jpg", (16, 16), 1)
    cfg = write_config(tmp_path / "c.yaml", root, train={"epochs": 1})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "skip")]) == 0
    text = (tmp_path / "skip" / "train.log").read_text()
    for name in ("empty.png", "cut.png", "photo.jpg", "notes.png"):
        assert f"skipped: {root / ('class0' if name in ('empty.png', 'cut.png') else 'class1')}" \
               f"/{name}" in text, name
    assert "skipped 4 unreadable image(s) of 30" in text  # 3x8, png_named.jpg, 4 bad, single
    assert "empty_class: class folder holds no images" in text
    assert "class single has 1 usable image(s): it takes part in different pairs only" in text
    for split in ("val", "test"):
        rows = (tmp_path / "skip" / "pairs" / f"{split}.csv").read_text()
        assert ".hidden" not in rows and ".cache" not in rows and "labels.txt" not in rows
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "err"),
                       "--set", "data.bad_images=error"]) == 2
    err = capsys.readouterr().err
    assert "4 unreadable image(s)" in err and "class0/cut.png" in err


def test_unwritable_run_dir_is_a_clear_error(tmp_path, capsys):
    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert train.main([str(cfg), "--run-dir", str(blocker / "run")]) == 2
    assert "cannot write the run directory" in capsys.readouterr().err


def test_disk_full_keeps_the_previous_checkpoint(trained_run, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run[0], run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    # A real write failure, even as root: the kernel refuses files above RLIMIT_FSIZE (EFBIG).
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({len(before) // 2}, {len(before) // 2}));"
            f" sys.argv = ['train.py', '--resume', {str(run_dir)!r}, '--set', 'train.epochs=3'];"
            " import runpy; runpy.run_path('train.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "cannot write checkpoint (File too large)" in proc.stderr
    assert "previous checkpoint is unchanged" in proc.stderr
    assert last.read_bytes() == before
    assert not [p for p in (run_dir / "checkpoints").iterdir() if ".tmp" in p.name]


def test_a_signal_that_breaks_the_unwinding_still_exits_with_its_code(capsys):
    """The handler raises wherever the main thread is; inside threading's lock code the
    unwinding itself can fail (RuntimeError: release unlocked lock, seen once under load). The
    exit status is still the signal's."""
    from siamese.commands.common import run
    from siamese.errors import Interrupted

    def body() -> int:
        try:
            raise Interrupted(signal.SIGTERM, "SIGTERM: stopped outside the training loop")
        finally:
            raise RuntimeError("release unlocked lock")

    assert run(body) == 143
    assert "stopped outside the training loop" in capsys.readouterr().err

    def other() -> int:
        raise RuntimeError("a real bug")

    with pytest.raises(RuntimeError, match="a real bug"):
        run(other)
