"""NCA in P x K batches against the formula computed by hand; it trains end to end."""

from __future__ import annotations

import json

import mxnet as mx
import numpy as np
import pytest

from siamese.config import from_dict
from siamese.errors import UserError
from siamese.losses.neighbours import BatchNCALoss


@pytest.mark.parametrize("hybrid", [False, True])
def test_nca_by_hand(hybrid):
    # Four unit vectors on a circle: 0 and 1 of class 0 at 0 and 90 degrees, 2 of class 1 at
    # 180 degrees, 3 of class 2 at 270 degrees (no other image of its class: loss 0).
    e = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], np.float32)
    labels = np.array([0, 0, 1, 2])
    loss = BatchNCALoss(scale=2.0)
    if hybrid:
        loss.hybridize()
    got = loss(mx.nd.array(e), mx.nd.array(labels), mx.nd.arange(4)).asnumpy()
    r2, two = np.sqrt(2.0), 2.0  # distances at 90 and 180 degrees
    # anchor 0: neighbours 1 (same, d = r2), 2 (d = 2), 3 (d = r2)
    p0 = np.exp(-2 * r2) / (np.exp(-2 * r2) + np.exp(-2 * two) + np.exp(-2 * r2))
    # (0.4329 = e^-2.83 / (2 e^-2.83 + e^-4)); anchor 1: neighbours 0 (same, r2), 2 (r2), 3 (2)
    p1 = np.exp(-2 * r2) / (2 * np.exp(-2 * r2) + np.exp(-2 * two))
    np.testing.assert_allclose(got, [-np.log(p0), -np.log(p1), 0.0, 0.0], rtol=1e-5, atol=1e-6)
    assert got[0] == pytest.approx(-np.log(0.4329), abs=1e-3)


def test_an_image_repeated_in_its_class_is_not_its_own_neighbour():
    # Image 7 twice in class 0 (a class with fewer than K images): the copy is not a neighbour;
    # the only other image, of class 1, sits at distance 2.
    e = mx.nd.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    got = BatchNCALoss(scale=1.0)(e, mx.nd.array([0, 0, 1]), mx.nd.array([7, 7, 8])).asnumpy()
    np.testing.assert_allclose(got, [0.0, 0.0, 0.0], atol=1e-6)  # nobody has a positive


def test_gradient_pulls_the_positive_closer():
    e = mx.nd.array([[1.0, 0.0], [0.6, 0.8], [0.8, -0.6]])
    e.attach_grad()
    with mx.autograd.record():
        out = BatchNCALoss(scale=4.0)(e, mx.nd.array([0, 0, 1]), mx.nd.arange(3)).sum()
    out.backward()
    d01_before = np.linalg.norm(e[0].asnumpy() - e[1].asnumpy())
    moved = e.asnumpy() - 0.01 * e.grad.asnumpy()
    assert np.linalg.norm(moved[0] - moved[1]) < d01_before


@pytest.mark.parametrize("raw, message", [
    ({"loss": {"name": "nca"}}, "loss.name: nca learns from class labels in P x K batches"),
    ({"loss": {"name": "nca"}, "data": {"sampler": "pk"}, "model": {"architecture": "two_channel"}},
     "loss.name"),
])
def test_nca_config_rules(raw, message):
    with pytest.raises(UserError, match=message):
        from_dict(raw)


def test_nca_run_trains_and_exports(tmp_path):
    from conftest import make_folder, write_config

    import train

    root = make_folder(tmp_path / "img", classes=8, per_class=6)
    cfg = write_config(tmp_path / "c.yaml", root,
                       data={"sampler": "pk", "classes_per_batch": 4, "images_per_class": 2,
                             "split": "class", "val_fraction": 0.25, "test_fraction": 0.25},
                       loss={"name": "nca", "scale": 8.0},
                       train={"epochs": 2, "pairs_per_epoch": 64})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "run")]) == 0
    meta = json.loads((tmp_path / "run" / "export" / "model.json").read_text())
    assert meta["score"]["name"] == "euclidean" and not meta["score"]["higher_is_similar"]
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in rows if "loss" in r)
