"""Triplet loss, in-batch mining, the P x K sampler, cosine vs euclidean, FAR thresholds and
early stopping: values computed by hand on tiny cases, then real short runs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from conftest import make_folder, write_config

import eval as eval_cli
import train
from siamese.config import Config, DataConfig, LossConfig, TrainConfig, from_dict, load_config
from siamese.data.augment import Augment
from siamese.data.folder import ImageFolder
from siamese.data.loaders import PKBatches
from siamese.data.prepare import PairData
from siamese.data.sampling import PairSampler
from siamese.errors import UserError
from siamese.eval.metrics import far_threshold, rates_at
from siamese.losses.distances import cosine_matrix, euclidean_matrix
from siamese.losses.triplet import BatchTripletLoss, TripletLoss
from siamese.models.architectures import SiameseNet
from siamese.models.branches import MLP
from siamese.scoring.scores import score_pairs
from siamese.train.engine import build


def nd(a):
    return mx.nd.array(np.asarray(a, np.float32))


def test_triplet_loss_by_hand():
    # d(a, p) = 5 (3-4-5 triangle); negatives at distance 1 and 10; margin 1.
    a, p = nd([[0, 0], [0, 0]]), nd([[3, 4], [3, 4]])
    n = nd([[0, 1], [0, 10]])
    got = TripletLoss(margin=1.0)(a, p, n).asnumpy()
    np.testing.assert_allclose(got, [5 - 1 + 1, 0.0], atol=1e-5)


# One-dimensional embeddings: class A at 0 and 1, class B at 1.5 and 3. Distances:
#   a0: a1 1 | b0 1.5, b1 3      a1: a0 1 | b0 0.5, b1 2
#   b0: b1 1.5 | a0 1.5, a1 0.5  b1: b0 1.5 | a0 3, a1 2
# Margin 1; each anchor has one positive. Per anchor, max(0, d(a,p) - d(a,n) + 1):
#   hard (closest negative):        0.5, 1.5, 2.0, 0.5
#   semi_hard (closest negative farther than the positive; if none the farthest negative):
#     a0: 1.5 -> 0.5; a1: 2 -> 0; b0: none > 1.5, farthest 1.5 -> 1.0; b1: 2 -> 0.5
#   none (mean over every negative): (0.5+0)/2, (1.5+0)/2, (1+2)/2, (0+0.5)/2
LINE = [[0.0], [1.0], [1.5], [3.0]]
LABELS, IDS = [0, 0, 1, 1], [0, 1, 2, 3]
EXPECTED = {"hard": [0.5, 1.5, 2.0, 0.5], "semi_hard": [0.5, 0.0, 1.0, 0.5],
            "none": [0.25, 0.75, 1.5, 0.25]}


@pytest.mark.parametrize("mining", sorted(EXPECTED))
@pytest.mark.parametrize("hybrid", [False, True])
def test_mining_rules_by_hand(mining, hybrid):
    loss = BatchTripletLoss(margin=1.0, mining=mining)
    if hybrid:
        loss.hybridize()
    got = loss(nd(LINE), nd(LABELS), nd(IDS)).asnumpy()
    np.testing.assert_allclose(got, EXPECTED[mining], atol=1e-5)


def test_hard_mining_gradient_equals_the_explicit_triplets():
    """Mining only selects: the gradient is the plain triplet loss's on the mined triplets."""
    e1 = nd(LINE)
    e1.attach_grad()
    with mx.autograd.record():
        total = BatchTripletLoss(margin=1.0, mining="hard")(e1, nd(LABELS), nd(IDS)).sum()
    total.backward()
    # Mined by hand: (anchor, positive, closest negative) = (0,1,2), (1,0,2), (2,3,1), (3,2,1)
    e2 = nd(LINE)
    e2.attach_grad()
    with mx.autograd.record():
        a, p, n = (mx.nd.take(e2, nd(ix)) for ix in ([0, 1, 2, 3], [1, 0, 3, 2], [2, 2, 1, 1]))
        total2 = TripletLoss(margin=1.0)(a, p, n).sum()
    total2.backward()
    assert total.asscalar() == pytest.approx(total2.asscalar(), abs=1e-5)
    np.testing.assert_allclose(e1.grad.asnumpy(), e2.grad.asnumpy(), atol=1e-5)
    # By hand, all four terms active: (e1-e0)-(e2-e0), (e1-e0)-(e2-e1), (e3-e2)-(e2-e1),
    # (e3-e2)-(e3-e1), each + 1; their sum's gradient is (-1, 5, -5, 1).
    np.testing.assert_allclose(e1.grad.asnumpy().ravel(), [-1, 5, -5, 1], atol=1e-4)


def test_a_repeated_image_is_never_its_own_positive():
    # Image 0 appears twice (a class with fewer than K images): no positive, loss 0, and the
    # other class's anchors still count.
    loss = BatchTripletLoss(margin=1.0, mining="hard")
    got = loss(nd([[0.0], [0.0], [1.5], [3.0]]), nd([0, 0, 1, 1]), nd([0, 0, 2, 3])).asnumpy()
    # b0: positive at 1.5, closest negative at 1.5 -> 1.0; b1: 1.5 - 3 + 1 < 0 -> 0.
    np.testing.assert_allclose(got, [0.0, 0.0, 1.0, 0.0], atol=1e-5)


def test_distance_matrices_match_pairwise_scoring():
    e = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    i, j = np.triu_indices(5, 1)
    for fn, name in ((euclidean_matrix, "euclidean"), (cosine_matrix, "cosine")):
        m = fn(mx.nd, nd(e)).asnumpy()
        np.testing.assert_allclose(m[i, j], score_pairs({"name": name}, e[i], e[j]), atol=1e-5)


def test_cosine_and_euclidean_rank_differently():
    # q = (1, 0); x = (2, 0.2) points the same way but is far; y = (0.8, 0.5) is near but turned.
    # euclidean: |q-x| = sqrt(1.04) = 1.020, |q-y| = sqrt(0.29) = 0.539 -> y first
    # cosine: 1 - 2/sqrt(4.04) = 0.0050, 1 - 0.8/sqrt(0.89) = 0.1520   -> x first
    q = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    xy = np.array([[2.0, 0.2], [0.8, 0.5]], np.float32)
    euc = score_pairs({"name": "euclidean"}, q, xy)
    cos = score_pairs({"name": "cosine"}, q, xy)
    np.testing.assert_allclose(euc, [1.0198, 0.5385], atol=1e-4)
    np.testing.assert_allclose(cos, [0.00496, 0.15201], atol=1e-4)
    assert np.argmin(euc) == 1 and np.argmin(cos) == 0


def test_pk_batches(caplog):
    # Classes of 5, 5, 3, 1 and 4 images; P = 3, K = 4.
    labels = np.repeat(np.arange(5), [5, 5, 3, 1, 4])
    sampler = PairSampler(labels, "train")
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(50):
        b = sampler.pk_batch(3, 4, rng)
        assert b.shape == (12,)
        blocks = labels[b].reshape(3, 4)
        assert (blocks == blocks[:, :1]).all()  # class by class, K each
        assert len(set(blocks[:, 0])) == 3 and 3 not in blocks  # P distinct, never class 3
        for row, cls in zip(b.reshape(3, 4), blocks[:, 0]):
            if cls == 2:  # 3 images: all three, then one repeat
                assert set(row) == {10, 11, 12}
            else:
                assert len(set(row)) == 4
            seen.add(cls)
    assert seen == {0, 1, 2, 4}
    folder = ImageFolder(Path("."), [f"{c}/{k}.png" for k, c in enumerate(labels)], labels,
                         [str(c) for c in range(5)])
    data = PairData(folder, np.zeros((18, 4, 4, 1), np.uint8), {"train": np.arange(18)}, {},
                    [0.5], [0.5])
    with caplog.at_level(logging.WARNING):
        tp = PKBatches(data, 3, 4, 48, Augment(), seed=0)
    assert "1 of 5 training classes have fewer than K=4" in caplog.text
    assert "1 training class(es) with a single image" in caplog.text
    x, y, ids = next(iter(tp.loader(0)))
    assert x.shape == (12, 1, 4, 4) and y.shape == (12,) and ids.shape == (12,)
    assert tp.batches_per_epoch() == 4
    with pytest.raises(UserError, match="data.classes_per_batch: 5 classes per batch"):
        PKBatches(data, 5, 4, 48, Augment(), seed=0)


def test_concat_and_twice_give_the_same_triplet_loss():
    mx.random.seed(0)
    branch = MLP(4, normalize=False, hidden=5)
    branch.initialize(mx.init.Xavier())
    x = [nd(np.random.default_rng(k).normal(size=(3, 6))) for k in range(3)]
    loss = TripletLoss(margin=0.5)
    out = [loss(*SiameseNet(branch, mode)(*x)).asnumpy() for mode in ("twice", "concat")]
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)


def test_far_threshold_by_hand():
    # Distances; same pairs 0.1 0.2 0.5, different pairs 0.3 0.6 0.9 1.0.
    d = np.array([0.1, 0.2, 0.5, 0.3, 0.6, 0.9, 1.0])
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    # FAR <= 0.25 allows one false accept: accept up to 0.5, midway to 0.6.
    r = far_threshold(d, y, higher_is_similar=False, target=0.25)
    assert r == pytest.approx({"threshold": 0.55, "far": 0.25, "tar": 1.0})
    # FAR <= 0.1 allows none: accept up to 0.2, midway to 0.3.
    r = far_threshold(d, y, higher_is_similar=False, target=0.1)
    assert r == pytest.approx({"threshold": 0.25, "far": 0.0, "tar": 2 / 3})
    assert rates_at(d, y, False, 0.25) == pytest.approx({"tar": 2 / 3, "far": 0.0})
    # Similarities: the same pairs with the sign flipped give the negated threshold.
    assert far_threshold(-d, y, True, 0.25)["threshold"] == pytest.approx(-0.55)


@pytest.mark.parametrize("raw, message", [
    ({"eval": {"threshold": "far:2"}}, "eval.threshold: expected accuracy or far:"),
    ({"eval": {"threshold": "recall"}}, "eval.threshold"),
    ({"loss": {"name": "triplet", "mining": "hard"}}, "loss.mining: hard mines inside P x K"),
    ({"data": {"sampler": "pk"}},
     "data.sampler: pk batches are for loss.name: triplet, cosface or nca"),
    ({"model": {"distance": "manhattan"}}, "model.distance: expected one of"),
])
def test_config_rules(raw, message):
    with pytest.raises(UserError, match=message):
        from_dict(raw)


def test_old_configs_with_loss_distance_still_load():
    cfg = from_dict({"loss": {"distance": "cosine"}, "model": {"branch": "mlp"}})
    assert cfg.model.distance == "cosine" and cfg.model.branch == "mlp"


# ------------------------------------------------------------------------- real short runs


def _run(tmp_path, root, name, **sections):
    cfg = write_config(tmp_path / f"{name}.yaml", root, **sections)
    run_dir = tmp_path / name
    assert train.main([str(cfg), "--run-dir", str(run_dir)]) == 0
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("sections", [
    {"loss": {"name": "triplet", "margin": 0.5}, "model": {"forward_mode": "twice"}},
    {"loss": {"name": "triplet", "margin": 0.5}, "model": {"forward_mode": "concat",
                                                           "distance": "cosine"}},
    {"loss": {"name": "triplet", "mining": "semi_hard"},
     "data": {"sampler": "pk", "classes_per_batch": 3, "images_per_class": 3},
     "eval": {"threshold": "far:0.05"}},
], ids=["random-twice", "random-concat-cosine", "pk-semi-hard-far"])
def test_triplet_runs_train_export_and_score(tmp_path, sections):
    root = make_folder(tmp_path / "images", classes=4, per_class=10)
    run_dir, m = _run(tmp_path, root, "run", **sections)
    meta = json.loads((run_dir / "export" / "model.json").read_text())
    distance = sections.get("model", {}).get("distance", "euclidean")
    assert meta["distance"] == meta["score"]["name"] == distance
    assert meta["score"]["higher_is_similar"] is False
    assert meta["score"]["threshold"] == m["val"]["threshold"] == m["test"]["threshold"]
    rule = sections.get("eval", {}).get("threshold", "accuracy")
    assert meta["score"]["threshold_rule"] == m["test"]["threshold_rule"] == rule
    if rule.startswith("far:"):
        assert m["val"]["far"] <= 0.05
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(np.isfinite(r["train_loss"]) for r in rows)
    unit = "images" if "data" in sections else "triplets"
    assert rows[0]["unit"] == unit


@pytest.mark.slow
def test_early_stopping(tmp_path, caplog):
    # No BatchNorm and an lr too small to move a float32 weight: validation AUC is equal every
    # epoch, so epoch 1 is best and patience 1 stops after epoch 2 of 5.
    root = make_folder(tmp_path / "images", classes=4, per_class=10)
    run_dir, m = _run(tmp_path, root, "run", model={"branch": "mlp", "embedding_size": 8},
                      train={"epochs": 5, "lr": 1e-30, "patience": 1, "schedule": "constant"})
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and rows[1]["early_stop"] is True
    assert len({r["val_auc"] for r in rows}) == 1
    assert m["stopped_early"] is True and m["epochs_trained"] == 2 and m["best_epoch"] == 1
    assert "early stop after epoch 2" in (run_dir / "train.log").read_text()
    # Resuming a finished, early-stopped run says so.
    assert train.main(["--resume", str(run_dir)]) == 2


@pytest.mark.slow
def test_eval_far_uses_validation_pairs(tmp_path, trained_run, capsys):
    run_dir, root, _ = trained_run
    out = tmp_path / "r.json"
    assert eval_cli.main([str(run_dir), "--far", "0.1,0.01", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    cal = report["far_calibration"]
    assert [c["target_far"] for c in cal] == [0.1, 0.01]
    for c in cal:
        assert c["val_far"] <= c["target_far"]
        assert c["val_pairs"].endswith("pairs/val.csv")
    assert "threshold for FAR 0.1 (validation)" in capsys.readouterr().out
    # An export directory alone has no validation pairs: say so.
    args = [str(run_dir / "export"), "--pairs", str(run_dir / "pairs" / "test.csv"), "--root",
            str(root), "--far", "0.1", "--out", str(tmp_path / "x.json")]
    assert eval_cli.main(args) == 2
    assert "--val-pairs" in capsys.readouterr().err
    args += ["--val-pairs", str(run_dir / "pairs" / "val.csv")]
    assert eval_cli.main(args) == 0
    again = json.loads((tmp_path / "x.json").read_text())["far_calibration"][0]
    assert again["threshold"] == pytest.approx(cal[0]["threshold"])


@pytest.mark.slow
def test_class_split_n_way_on_unseen_classes(tmp_path, capsys):
    root = make_folder(tmp_path / "images", classes=8, per_class=6)
    run_dir, _ = _run(tmp_path, root, "run", data={"split": "class", "val_pairs": 20,
                                                  "test_pairs": 20},
                      loss={"name": "triplet"})
    split = (run_dir / "pairs" / "split.csv").read_text().splitlines()
    train_classes = {line.split(",")[1] for line in split[1:] if line.split(",")[2] == "train"}
    assert len(train_classes) == 4  # 8 classes: 2 val, 2 test, 4 train
    out = tmp_path / "n.json"
    assert eval_cli.main([str(run_dir), "--n-way", "2,4", "--classes", "unseen", "--root",
                          str(root), "--episodes", "50", "--out", str(out)]) == 0
    n_way = json.loads(out.read_text())["n_way"]
    assert n_way["4"]["n_classes"] == 4 and n_way["4"]["classes"] == "unseen"
    assert eval_cli.main([str(run_dir), "--n-way", "5", "--classes", "unseen", "--root",
                          str(root), "--out", str(out)]) == 2
    assert "only 4 unseen classes" in capsys.readouterr().err


def test_config_defaults_are_unchanged():
    cfg = Config()
    assert (cfg.loss.name, cfg.data.sampler, cfg.model.distance, cfg.eval.threshold,
            cfg.train.patience) == ("contrastive", "pairs", "euclidean", "accuracy", 0)
    assert isinstance(cfg.data, DataConfig) and isinstance(cfg.loss, LossConfig)
    assert isinstance(cfg.train, TrainConfig)


@pytest.mark.parametrize("loss,split,warned", [("logistic", "class", True),
                                               ("contrastive", "class", False),
                                               ("logistic", "image", False)])
def test_logistic_head_on_unseen_classes_is_warned(tmp_path, caplog, loss, split, warned):
    root = make_folder(tmp_path / "data", classes=6, per_class=8)
    data = {"split": split, **({"val_fraction": 0.34, "test_fraction": 0.34}
                               if split == "class" else {})}
    cfg = load_config(write_config(tmp_path / "c.yaml", root, loss={"name": loss}, data=data))
    with caplog.at_level(logging.WARNING):
        build(cfg)
    assert ("below chance on unseen" in caplog.text) == warned
