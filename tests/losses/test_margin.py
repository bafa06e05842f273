"""CosFace against the formula computed by hand in numpy; it trains end to end."""

from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest

from siamese.losses.margin import CosFaceLoss


@pytest.mark.parametrize("hybrid", [False, True])
def test_cosface_by_hand(hybrid):
    e = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]], np.float32)
    w = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0]], np.float32)
    y = np.array([0, 1, 2])
    loss = CosFaceLoss(classes=3, embedding_size=2, scale=10.0, margin=0.5)
    loss.initialize()
    loss(mx.nd.array(e), mx.nd.array(y), mx.nd.arange(3))  # fixes the deferred shape
    loss.weight.set_data(mx.nd.array(w))
    if hybrid:
        loss.hybridize()
    got = loss(mx.nd.array(e), mx.nd.array(y), mx.nd.arange(3)).asnumpy()
    cos = (e / np.linalg.norm(e, axis=1, keepdims=True)) @ \
        (w / np.linalg.norm(w, axis=1, keepdims=True)).T  # e.g. row 0: 0.6, 0.8, 0.1414
    logits = 10.0 * (cos - 0.5 * np.eye(3)[y])
    expected = -(logits[np.arange(3), y] - np.log(np.exp(logits).sum(axis=1)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert cos[0, 0] == pytest.approx(0.6) and cos[0, 1] == pytest.approx(0.8)


def test_cosface_run_trains_and_exports(tmp_path):
    import json

    from conftest import make_folder, write_config

    import train

    root = make_folder(tmp_path / "img", classes=8, per_class=6)
    cfg = write_config(tmp_path / "c.yaml", root,
                       data={"sampler": "pk", "classes_per_batch": 4, "images_per_class": 2,
                             "split": "class", "val_fraction": 0.25, "test_fraction": 0.25},
                       loss={"name": "cosface", "margin": 0.2, "scale": 16.0},
                       model={"distance": "cosine"},
                       train={"epochs": 2, "pairs_per_epoch": 64})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "run")]) == 0
    meta = json.loads((tmp_path / "run" / "export" / "model.json").read_text())
    assert meta["score"]["name"] == "cosine" and not meta["score"]["higher_is_similar"]
