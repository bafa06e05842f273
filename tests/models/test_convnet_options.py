"""The convnet branch's options from the `model` section: model.widths, model.stem_stride and
model.pool. Shapes of the feature maps, the embedding computed by hand from the layers, the
config rules, and a short run with pool: flatten that exports, reloads and scores."""

from __future__ import annotations

import json

import mxnet as mx
import numpy as np
import pytest

from siamese.config import from_dict
from siamese.errors import UserError
from siamese.models.architectures import build_model


def _branch(size=32, **model):
    cfg = from_dict({"model": dict({"embedding_size": 8}, **model)})
    net = build_model(cfg.model)
    net.initialize(mx.init.Xavier())
    net.branch(mx.nd.zeros((1, 1, size, size)))  # fixes the deferred shapes
    return net.branch


def _image(size=32, seed=0, n=3):
    return mx.nd.array(np.random.RandomState(seed).rand(n, 1, size, size))


@pytest.mark.parametrize("model, size, fmap", [
    ({}, 32, (128, 8, 8)),  # two poolings by 2
    ({"widths": [16, 24]}, 32, (24, 16, 16)),  # one block fewer: one pooling
    ({"widths": [8, 8, 8, 16]}, 32, (16, 4, 4)),
    ({"stem_stride": 2}, 64, (128, 8, 8)),  # a 64x64 input on the map of a 32x32 one
    ({"stem_stride": 2}, 32, (128, 4, 4)),
])
def test_feature_map_shapes(model, size, fmap):
    branch = _branch(size, **model)
    assert branch.features(_image(size)).shape == (3,) + fmap


def _by_hand(branch, x, flatten):
    """l2-normalised Dense over the mean (or the flattened map) of the features."""
    fmap = branch.features(x).asnumpy()
    v = fmap.reshape(len(fmap), -1) if flatten else fmap.mean(axis=(2, 3))
    w, b = branch.embed.weight.data().asnumpy(), branch.embed.bias.data().asnumpy()
    e = v @ w.T + b
    return e / np.linalg.norm(e, axis=1, keepdims=True)


@pytest.mark.parametrize("pool", ["mean", "flatten"])
def test_embedding_from_the_mean_or_the_whole_map(pool):
    branch = _branch(pool=pool)
    x = _image()
    # the embedding layer sees 128 values (the mean) or the whole 128 x 8 x 8 map
    assert branch.embed.weight.shape == (8, 128 if pool == "mean" else 128 * 8 * 8)
    np.testing.assert_allclose(branch(x).asnumpy(), _by_hand(branch, x, pool == "flatten"),
                               rtol=1e-4, atol=1e-6)
    branch.hybridize()
    np.testing.assert_allclose(branch(x).asnumpy(), _by_hand(branch, x, pool == "flatten"),
                               rtol=1e-4, atol=1e-6)


def test_flatten_keeps_where_a_feature_is_and_the_mean_does_not():
    """Two maps with the same values in other places: the mean cannot tell them apart."""
    mean, flat = _branch(pool="mean"), _branch(pool="flatten")
    fmap = np.random.RandomState(3).rand(1, 128, 8, 8).astype(np.float32)
    moved = fmap[:, :, ::-1, :].copy()  # upside down
    for branch, same in ((mean, True), (flat, False)):
        a = branch.embed(branch.pool(mx.nd.array(fmap))).asnumpy()
        b = branch.embed(branch.pool(mx.nd.array(moved))).asnumpy()
        assert np.allclose(a, b, atol=1e-5) == same


@pytest.mark.parametrize("model, message", [
    ({"pool": "flatten", "decoder": "tied"}, "model.pool: .*decoder"),
    ({"stem_stride": 2, "decoder": "tied"}, "model.stem_stride: .*decoder"),
    ({"pool": "flatten", "branch": "mlp"}, "model.pool: only for model.branch: convnet"),
    ({"stem_stride": 2, "branch": "mlp"}, "model.stem_stride: only for model.branch: convnet"),
    ({"widths": [8, 8], "branch": "mlp"}, "model.widths: only for model.branch: convnet"),
    ({"pool": "max"}, "model.pool"),
])
def test_config_rules(model, message):
    with pytest.raises(UserError, match=message):
        from_dict({"model": model})


@pytest.mark.slow
def test_a_run_with_a_flattened_map_exports_and_scores(tmp_path):
    from conftest import make_folder, write_config

    import eval as evaluate
    import train

    root = make_folder(tmp_path / "img", classes=6, per_class=6)
    cfg = write_config(tmp_path / "c.yaml", root,
                       model={"pool": "flatten", "members": 2, "embedding_size": 8,
                              "widths": [8, 16]},
                       train={"epochs": 1, "pairs_per_epoch": 64})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "run")]) == 0
    meta = json.loads((tmp_path / "run" / "export" / "model.json").read_text())
    assert meta["embedding_size"] == 16
    params = mx.nd.load(str(tmp_path / "run" / "export" / "branch-0000.params"))
    dense = [v.shape for k, v in params.items() if "dense" in k and k.endswith("weight")]
    assert dense == [(8, 16 * 8 * 8)] * 2  # 16 x 16 inputs, one pooling: each member's 16 x 8 x 8
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    out = tmp_path / "eval.json"
    assert evaluate.main([str(tmp_path / "run"), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["auc"] == pytest.approx(metrics["test"]["auc"], abs=1e-6)
