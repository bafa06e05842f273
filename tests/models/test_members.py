"""model.members: an ensemble inside the one branch. Its embedding and distance against the
members computed apart, one loss per member (the same gradients as apart), the config rules, and
a short run that exports, reloads and evaluates."""

from __future__ import annotations

import json

import mxnet as mx
import numpy as np
import pytest

from siamese.config import from_dict
from siamese.config.schema import LossConfig
from siamese.errors import UserError
from siamese.losses.registry import build_loss
from siamese.losses.triplet import BatchTripletLoss
from siamese.models.architectures import build_model
from siamese.models.branches import Members


def _net(members=3, **model):
    cfg = from_dict({"model": dict({"branch": "mlp", "embedding_size": 4,
                                    "members": members}, **model)})
    net = build_model(cfg.model)
    net.initialize(mx.init.Xavier())
    net.branch(mx.nd.zeros((1, 1, 6, 6)))  # fixes the deferred shapes
    return net


def test_embedding_is_the_members_concatenated_over_root_n():
    net = _net(3)
    x = mx.nd.array(np.random.RandomState(0).rand(5, 1, 6, 6))
    out = net.branch(x).asnumpy()  # (5, 12)
    parts = [p(x).asnumpy() for p in net.branch.parts]
    np.testing.assert_allclose(out, np.concatenate(parts, axis=1) / np.sqrt(3), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    # squared euclidean distance = the mean of the members' squared distances
    d2 = np.square(out[0] - out[1]).sum()
    np.testing.assert_allclose(d2, np.mean([np.square(p[0] - p[1]).sum() for p in parts]),
                               rtol=1e-5)
    # 1 - cosine = the mean of the members' 1 - cosine
    np.testing.assert_allclose(1 - out[0] @ out[2], np.mean([1 - p[0] @ p[2] for p in parts]),
                               rtol=1e-5)


def test_members_have_their_own_parameters_and_both_sides_share_them():
    net = _net(2)
    assert isinstance(net.branch, Members)
    names = sorted(net.branch._collect_params_with_prefix())
    assert names[0].startswith("member0.") and names[-1].startswith("member1.")
    a = net.branch.parts[0].hidden.weight.data().asnumpy()
    b = net.branch.parts[1].hidden.weight.data().asnumpy()
    assert a.shape == b.shape and not np.allclose(a, b)  # drawn apart
    x1 = mx.nd.ones((2, 1, 6, 6))
    e1, e2 = net(x1, x1)
    np.testing.assert_allclose(e1.asnumpy(), e2.asnumpy(), rtol=1e-6)  # one branch, both sides


def test_one_loss_per_member_gives_the_gradients_of_the_members_apart():
    net = _net(2)
    rng = np.random.RandomState(1)
    x = mx.nd.array(rng.rand(8, 1, 6, 6))
    labels, ids = mx.nd.array([0, 0, 1, 1, 2, 2, 3, 3]), mx.nd.arange(8)
    loss = build_loss(LossConfig(name="triplet", margin=0.5, mining="semi_hard"), "euclidean",
                      "batch_triplet", members=2)
    params = net.branch.collect_params()
    with mx.autograd.record():
        together = loss(net.branch(x), labels, ids)
        total = together.sum()
    total.backward()
    grads = {n: p.grad().asnumpy().copy() for n, p in params.items()}
    single = BatchTripletLoss(0.5, "euclidean", "semi_hard")
    apart = []
    for part in net.branch.parts:
        with mx.autograd.record():
            own = single(part(x), labels, ids)
            half = own.sum() / 2
        half.backward()
        apart.append(own.asnumpy())
        for n, p in part.collect_params().items():
            np.testing.assert_allclose(grads[n], p.grad().asnumpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(together.asnumpy(), np.mean(apart, axis=0), rtol=1e-5)
    assert not np.allclose(apart[0], apart[1])  # two different models


@pytest.mark.parametrize("model, message", [
    ({"members": 2, "architecture": "pseudo_siamese"}, "model.members: .* siamese"),
    ({"members": 2, "normalize": False}, "model.members: .* model.normalize: true"),
    ({"members": 2, "decoder": "tied"}, "model.members: not with model.decoder"),
    ({"members": 0}, "model.members"),
])
def test_members_config_rules(model, message):
    with pytest.raises(UserError, match=message):
        from_dict({"model": model})


@pytest.mark.slow
@pytest.mark.parametrize("loss", [
    {"name": "triplet", "mining": "semi_hard"},
    {"name": "cosface", "margin": 0.2, "scale": 16.0},
])
def test_a_run_with_members_exports_and_scores_as_one_branch(tmp_path, loss):
    from conftest import make_folder, write_config

    import eval as evaluate
    import train

    root = make_folder(tmp_path / "img", classes=8, per_class=6)
    cfg = write_config(tmp_path / "c.yaml", root,
                       data={"sampler": "pk", "classes_per_batch": 4, "images_per_class": 2,
                             "split": "class", "val_fraction": 0.25, "test_fraction": 0.25},
                       model={"members": 3, "embedding_size": 8},
                       loss=loss, train={"epochs": 2, "pairs_per_epoch": 64})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "run")]) == 0
    meta = json.loads((tmp_path / "run" / "export" / "model.json").read_text())
    assert meta["members"] == 3 and meta["embedding_size"] == 24
    symbol = json.loads((tmp_path / "run" / "export" / "branch-symbol.json").read_text())
    layers = {n["name"] for n in symbol["nodes"]}
    assert any("member2_" in n for n in layers) and not any("member3_" in n for n in layers)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    out = tmp_path / "eval.json"
    assert evaluate.main([str(tmp_path / "run"), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["auc"] == pytest.approx(metrics["test"]["auc"], abs=1e-6)
    # the members and their losses resume from the checkpoint
    assert train.main(["--resume", str(tmp_path / "run"), "--set", "train.epochs=3"]) == 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
