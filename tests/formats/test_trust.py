"""Untrusted and damaged files: checkpoints never run a general unpickler, pair files stay
inside --root, changed images are caught on resume and by eval --far, torn logs and stale
temporaries are repaired, a folder the user named is never deleted."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, make_folder, write_config
from PIL import Image

import eval as eval_cli
import train
from siamese.data.pairfiles import read_pair_file
from siamese.errors import UserError
from siamese.formats import checkpoint, optstate

FIXTURE = ROOT / "tests" / "fixtures" / "legacy"


class Payload:
    """Unpickling it would create `target` (what an attacker's code could do instead)."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return open, (str(self.target), "w")


def test_new_checkpoints_hold_no_pickle(trained_run):
    path = trained_run[0] / "checkpoints" / "last.ckpt"
    with np.load(path, allow_pickle=False) as z:
        names = z.files
        assert all(z[k].dtype != object for k in names)
    assert "optimizer_states" not in names
    assert any(k.startswith(optstate.PREFIX) for k in names)
    meta = checkpoint.read(path)[0]
    layout = meta["optimizer"]["states"]
    assert layout and all(t is None or "seq" in t or "array" in t for t in layout.values())


def test_optimizer_state_round_trips_exactly():
    import mxnet as mx

    states = {0: (mx.nd.array([1.0, 2.0]), mx.nd.array([[3.0]])), 1: None,
              2: mx.nd.array([4.0]), 3: [mx.nd.array([5.0])]}
    layout, arrays = optstate.flatten(states)
    json.dumps(layout)  # plain JSON
    back = optstate.unflatten(layout, arrays, "x.ckpt")
    assert back[1] is None and isinstance(back[0], tuple) and isinstance(back[3], list)
    np.testing.assert_array_equal(back[0][1].asnumpy(), [[3.0]])
    np.testing.assert_array_equal(back[2].asnumpy(), [4.0])


def legacy_copy(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "legacy")
    return tmp_path / "legacy"


def replace_optimizer_bytes(path: Path, data: bytes) -> None:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["optimizer_states"] = np.frombuffer(data, np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_a_pickle_payload_in_an_old_checkpoint_is_refused(tmp_path, capsys, monkeypatch):
    run = legacy_copy(tmp_path) / "run"
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(Payload(probe))).close()  # a general unpickler runs it ...
    assert probe.exists()
    target = tmp_path / "owned"  # ... resume must not
    replace_optimizer_bytes(run / "checkpoints" / "last.ckpt", pickle.dumps({0: Payload(target)}))
    monkeypatch.chdir(run.parent)
    assert train.main(["--resume", "run", "--set", "train.epochs=3"]) == 2
    err = capsys.readouterr().err
    assert "last.ckpt: refused its optimizer state (refused to load io.open)" in err
    assert not target.exists()
    with pytest.raises(UserError, match="refused"):
        optstate.legacy_states(pickle.dumps(Payload(target)), "x")
    assert not target.exists()


def test_pair_paths_outside_root_are_refused_unless_allowed(tmp_path, capsys):
    root = make_folder(tmp_path / "img", classes=2, per_class=3)
    outside = tmp_path / "elsewhere.png"
    shutil.copy(root / "class0" / "000.png", outside)
    for bad in ("../elsewhere.png", str(outside), "class0/../../elsewhere.png"):
        f = tmp_path / "p.csv"
        f.write_text(f"left,right,label\nclass0/000.png,class0/001.png,1\n"
                     f"class0/000.png,{bad},0\n")
        with pytest.raises(UserError, match=r"p.csv: line 3: .* is outside --root"):
            read_pair_file(f, root)
        assert read_pair_file(f, root, allow_outside=True).labels.tolist() == [1, 0]
    lfw = tmp_path / "pairs.txt"
    lfw.write_text("1 1\nclass0 1 2\nclass0 1 .. 1\n")
    with pytest.raises(UserError, match="pairs.txt: line 3: .. is outside --root"):
        read_pair_file(lfw, root)


def test_changed_pixels_refuse_resume_naming_the_file(tmp_path, capsys):
    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root)
    run = tmp_path / "run"
    assert train.main([str(cfg), "--run-dir", str(run)]) == 0
    assert (run / "pairs" / "digests.csv").read_text().count("\n") == 33  # header + 32 images
    image = root / "class2" / "003.png"
    before = image.read_bytes()
    Image.fromarray(np.full((16, 16), 99, np.uint8)).save(image)  # same name, same size
    assert train.main(["--resume", str(run), "--set", "train.epochs=3"]) == 2
    assert f"{image}: changed since the run started" in capsys.readouterr().err
    image.write_bytes(before)
    os.utime(image, (1, 1))  # another time stamp, the same pixels: still the same data
    assert train.main(["--resume", str(run), "--set", "train.epochs=3"]) == 0


def test_eval_far_refuses_a_root_with_other_validation_images(trained_run, tmp_path, capsys):
    run_dir, root, _ = trained_run
    other = tmp_path / "copy"
    shutil.copytree(root, other)
    assert eval_cli.main([str(run_dir), "--far", "0.1", "--root", str(other),
                          "--out", str(tmp_path / "a.json")]) == 0  # a faithful copy is fine
    first = (run_dir / "pairs" / "val.csv").read_text().splitlines()[1].split(",")[0]
    Image.fromarray(np.full((16, 16), 7, np.uint8)).save(other / first)
    assert eval_cli.main([str(run_dir), "--far", "0.1", "--root", str(other),
                          "--out", str(tmp_path / "b.json")]) == 2
    assert f"{other / first}: not the image the run" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()


def test_resume_repairs_a_torn_log_and_removes_stale_temporaries(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run[0], run)
    (run / "metrics.json").unlink()
    with open(run / "log.jsonl", "a") as fh:
        fh.write('{"epoch": 3, "train_lo')  # a crash in the middle of a write
    stale = [run / "checkpoints" / ".last.ckpt.tmp-99999", run / ".metrics.json.tmp-99999",
             run / ".export.tmp-99999", run / ".export.old-99999"]
    for p in stale[:2]:
        p.write_bytes(b"half")
    for p in stale[2:]:
        p.mkdir()
        (p / "model.json").write_text("{")
    keep = run / "notes.txt"
    keep.write_text("mine")
    assert train.main(["--resume", str(run), "--set", "train.epochs=3"]) == 0
    assert not [p for p in stale if p.exists()] and keep.read_text() == "mine"
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]


def test_a_run_directory_named_like_scratch_is_kept(tmp_path):
    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root, train={"epochs": 1})
    mine = tmp_path / "siamese-worker-mine"
    assert train.main([str(cfg), "--run-dir", str(mine)]) == 0
    assert (mine / "metrics.json").is_file()
