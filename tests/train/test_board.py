"""TensorBoard: the event files hold the expected tags and values (read back with the writer's
own protobuf definitions), the projector gets its embeddings, a missing extra is named."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest
from conftest import extra, make_folder, write_config

import train


def events(folder: Path) -> list:
    """(step, tag, value) of every scalar in the event files below `folder` (TFRecord framing:
    length, its CRC, the Event bytes, their CRC)."""
    from tensorboardX.proto import event_pb2

    out = []
    for f in sorted(folder.rglob("events.out.tfevents.*")):
        data, i = f.read_bytes(), 0
        while i < len(data):
            n = struct.unpack("<Q", data[i:i + 8])[0]
            ev = event_pb2.Event()
            ev.ParseFromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4
            out += [(ev.step, v.tag, v.simple_value) for v in ev.summary.value]
    return out


def test_a_run_writes_scalars_steps_and_the_projector(tmp_path):
    extra("tensorboardX")
    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root, log={"tensorboard": True,
                                                      "tensorboard_every": 2})
    run = tmp_path / "run"
    assert train.main([str(cfg), "--run-dir", str(run)]) == 0
    got = events(run / "tensorboard")
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    for row in rows:
        for key, tag in (("train_loss", "train/loss"), ("val_auc", "val/auc"),
                         ("lr", "train/lr")):
            (value,) = [v for s, t, v in got if t == tag and s == row["epoch"]]
            assert value == pytest.approx(row[key], rel=1e-6, abs=1e-7), (tag, row["epoch"])
    steps = sorted(s for s, t, _ in got if t == "train/step_loss")
    assert steps == [2, 4, 6, 8]  # 2 epochs x 4 steps, every 2nd
    projector = run / "tensorboard" / "00000" / "validation"
    assert (projector / "tensors.tsv").is_file() and (projector / "sprite.png").is_file()
    labels = (projector / "metadata.tsv").read_text().split()
    assert len(labels) == 8 and set(labels) <= {f"class{c}" for c in range(4)}


def test_without_the_extra_the_key_names_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import now raises ImportError
    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root, log={"tensorboard": True})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "run")]) == 2
    assert "log.tensorboard: needs the tensorboard extra: pip install -e '.[tensorboard]'" \
        in capsys.readouterr().err
