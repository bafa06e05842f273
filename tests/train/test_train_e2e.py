"""End to end on a tiny real folder: train, checkpoint, score, export, re-evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import write_config

import train
from siamese.config import from_dict
from siamese.data.images import load_images
from siamese.formats import checkpoint
from siamese.formats.bundle import read_meta
from siamese.formats.preprocess import to_tensor
from siamese.losses.registry import build_loss
from siamese.models.architectures import build_model
from siamese.scoring.bundles import load_branch

pytestmark = pytest.mark.slow


@pytest.fixture
def run(trained_run):
    return trained_run


def test_run_directory_contract(run):
    run_dir, _, _ = run
    for name in ("config.yaml", "log.jsonl", "train.log", "metrics.json", "pairs/val.csv",
                 "pairs/test.csv", "checkpoints/last.ckpt", "checkpoints/best.ckpt",
                 "export/branch-symbol.json", "export/branch-0000.params", "export/model.json"):
        assert (run_dir / name).is_file(), name
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("train_loss", "val_auc", "val_accuracy", "examples_per_s", "lr", "seconds"):
        assert all(np.isfinite(r[key]) for r in rows), key
    m = json.loads((run_dir / "metrics.json").read_text())
    for split in ("val", "test"):
        assert set(m[split]) >= {"auc", "eer", "accuracy", "threshold", "n_pairs"}
    # The test threshold is the validation one, unchanged.
    assert m["test"]["threshold"] == m["val"]["threshold"]
    assert m["best_epoch"] in (1, 2) and m["train_seconds"] > 0
    meta = read_meta(run_dir / "export")
    assert meta["score"]["threshold"] == m["val"]["threshold"]
    assert meta["input"]["shape"] == [-1, 1, 16, 16]
    assert m["test"]["auc"] > 0.9  # the tiny classes are easy: it must really learn


def test_checkpoints_hold_config_and_reload(run):
    run_dir, _, _ = run
    meta, params, _ = checkpoint.read(run_dir / "checkpoints" / "best.ckpt")
    assert meta["epoch"] == json.loads((run_dir / "metrics.json").read_text())["best_epoch"]
    cfg = from_dict(meta["config"])
    assert cfg.data.image_size == [16, 16]
    assert any(k.startswith("model.branch.") for k in params)


def test_export_matches_the_trained_branch(run):
    run_dir, root, _ = run
    meta, _, _ = checkpoint.read(run_dir / "checkpoints" / "best.ckpt")
    cfg = from_dict(meta["config"])
    import mxnet as mx

    net, loss = build_model(cfg.model), build_loss(cfg.loss, cfg.model.distance)
    net.initialize()
    loss.initialize()
    x = mx.nd.zeros((1, 1, 16, 16))
    loss(*net(x, x), mx.nd.zeros((1,)))
    checkpoint.restore(run_dir / "checkpoints" / "best.ckpt", {"model": net, "loss": loss})
    files = sorted(root.glob("*/*.png"))[:5]
    x = mx.nd.array(to_tensor(load_images(files, (16, 16), 1), [0.5], [0.5]))
    expected = net.branch(x).asnumpy()
    got = load_branch(run_dir / "export")(x).asnumpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_finished_run_dir_is_refused_without_force(run, capsys):
    run_dir, _, cfg = run
    assert train.main([str(cfg), "--run-dir", str(run_dir)]) == 2
    assert "finished run" in capsys.readouterr().err


@pytest.mark.parametrize("overrides", [
    ["model.forward_mode=twice"],
    ["loss.name=logistic", "train.lr=0.01"],
    ["model.distance=cosine", "loss.margin=0.5", "train.optimizer=sgd", "train.lr=0.05"],
    ["data.split=class", "data.val_fraction=0.2", "data.test_fraction=0.2"],
])
def test_variants_train_and_score(tmp_path, overrides):
    from conftest import make_folder

    classes = 8 if "data.split=class" in overrides else 4
    root = make_folder(tmp_path / "img", classes=classes, per_class=8)
    cfg = write_config(tmp_path / "c.yaml", root)
    sets = sum((["--set", o] for o in overrides), [])
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "r"), *sets]) == 0
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert 0.0 <= m["test"]["auc"] <= 1.0 and m["test"]["n_pairs"] > 0
    assert read_meta(tmp_path / "r" / "export")["score"]["higher_is_similar"] == (
        "loss.name=logistic" in overrides)
