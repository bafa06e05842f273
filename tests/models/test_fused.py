"""The fused training operators (models.fused): the same maths as the plain ones, forward and
backward; the switch, and exports that hold the plain operators whatever the training graph."""

from __future__ import annotations

import json

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from mxnet.gluon import HybridBlock

from siamese.commands.bench.baselines import PlainCheckStep
from siamese.config import TrainConfig
from siamese.export.writer import export_branch
from siamese.losses.pair import ContrastiveLoss
from siamese.models.architectures import SiameseNet
from siamese.models.branches import ConvNet, get_branch
from siamese.models.fused import (
    BatchNormReLU,
    GlobalMean,
    fused_available,
    is_fused,
    plain_graph,
    set_fused,
)
from siamese.scoring.bundles import load_branch
from siamese.train.step import NonFiniteStep, TrainStep
from siamese.train.trainer import build_trainer

FUSED_OPS = {"_contrib_BatchNormWithReLU"}  # and the mean as a pooling
PLAIN_OPS = {"BatchNorm", "Activation", "mean"}


def _ops(sym) -> set:
    return {n["op"] for n in json.loads(sym.tojson())["nodes"]}


def _run(block, x, fused: bool, train: bool):
    """Output, input gradient and parameter gradients of sum(out * w) for fixed weights w."""
    set_fused(block, fused)
    x = x.copy()
    x.attach_grad()
    with autograd.record(train_mode=train):
        out = block(x)
        w = mx.nd.array(np.random.default_rng(1).normal(size=out.shape))
        y = (out * w).sum()
    y.backward()
    grads = {k: p.grad().asnumpy().copy() for k, p in block.collect_params().items()
             if p.grad_req != "null"}
    return out.asnumpy(), x.grad.asnumpy(), grads


@pytest.mark.parametrize("global_stats", [False, True])  # True: a frozen layer (model.freeze)
@pytest.mark.parametrize("hybrid", [True, False])
def test_batchnorm_relu_fused_equals_batchnorm_then_relu(global_stats, hybrid):
    """In training mode, where gradients are taken (in predict mode MXNet 1.9.1's fused
    backward differs; nothing here takes gradients in predict mode)."""
    bn = BatchNormReLU(use_global_stats=global_stats)
    bn.initialize()
    rng = np.random.default_rng(0)
    x = mx.nd.array(rng.normal(size=(6, 16, 5, 5)))
    bn(x)
    bn.gamma.set_data(mx.nd.array(rng.uniform(0.5, 2, 16)))
    bn.beta.set_data(mx.nd.array(rng.normal(size=16)))
    bn.running_mean.set_data(mx.nd.array(rng.normal(size=16)))
    bn.running_var.set_data(mx.nd.array(rng.uniform(0.5, 2, 16)))
    if hybrid:
        bn.hybridize()
    plain = _run(bn, x, False, True)
    fused = _run(bn, x, True, True)
    assert (plain[0] >= 0).all() and (plain[0] == 0).mean() > 0.2  # ReLU is applied
    for a, b in zip(plain[:2], fused[:2]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    for k in plain[2]:
        np.testing.assert_allclose(fused[2][k], plain[2][k], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("side, op", [(8, "Pooling"), (9, "_contrib_AdaptiveAvgPooling2D")])
def test_global_mean_fused_equals_mean_over_h_and_w(side, op):
    m = GlobalMean()
    x = mx.nd.array(np.random.default_rng(0).normal(size=(3, 4, side, side - 1)))
    plain = _run(m, x, False, True)  # imperative: sees the map's side
    assert m.map_side == side
    m.hybridize()
    fused = _run(m, x, True, True)
    assert op in _ops(m._cached_graph[1])
    assert plain[0].shape == (3, 4) and fused[0].shape == (3, 4, 1, 1)
    np.testing.assert_allclose(plain[0], x.asnumpy().mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused[0].reshape(3, 4), plain[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused[1], plain[1], rtol=1e-5, atol=1e-7)


def test_a_mean_never_called_imperatively_takes_the_adaptive_pooling():
    net = ConvNet(4)
    net.initialize()
    set_fused(net, True)
    net.hybridize()
    net(mx.nd.ones((1, 1, 16, 16)))  # traced as a whole: the mean sees no shape
    assert net.pool.map_side == 0
    assert "_contrib_AdaptiveAvgPooling2D" in _ops(net._cached_graph[1])


def test_convnet_keeps_the_parameter_names_of_earlier_runs():
    net = ConvNet(8)
    net.initialize()
    net(mx.nd.zeros((1, 1, 16, 16)))
    layer = {0: "weight", 1: "gamma", 4: "weight", 5: "gamma", 8: "weight", 9: "gamma"}
    names = set(net._collect_params_with_prefix())
    assert {f"features.{k}.{v}" for k, v in layer.items()} <= names
    assert {"embed.weight", "embed.bias"} <= names and len(names) == 17
    assert {p.name for p in net.collect_params().values()} >= {
        net.prefix + n for n in ("batchnorm0_gamma", "batchnorm2_running_var", "conv1_weight")}


def test_the_switch_changes_the_graph_and_plain_graph_restores_it():
    net = SiameseNet(get_branch("convnet", 8), "concat")
    net.initialize()
    x = mx.nd.array(np.random.default_rng(0).normal(size=(2, 1, 16, 16)))
    net(x, x)
    assert not is_fused(net)
    assert set_fused(net, True) == 4  # three BatchNormReLU layers and the mean
    net.hybridize()
    net.branch(x)
    assert FUSED_OPS <= _ops(net.branch._cached_graph[1])
    assert not PLAIN_OPS & _ops(net.branch._cached_graph[1])
    with plain_graph(net):
        assert not is_fused(net)
        net.branch(x)
        assert PLAIN_OPS <= _ops(net.branch._cached_graph[1])
        assert not FUSED_OPS & _ops(net.branch._cached_graph[1])
    assert is_fused(net)
    net.branch(x)
    assert FUSED_OPS <= _ops(net.branch._cached_graph[1])


@pytest.mark.parametrize("mode", ["concat", "twice"])
def test_fused_training_follows_the_plain_training(mode):
    """Three steps from the same weights on the same batch: same losses and weights."""
    rng = np.random.default_rng(0)
    x1, x2 = (mx.nd.array(rng.normal(size=(8, 1, 16, 16))) for _ in range(2))
    y = mx.nd.array([1, 0] * 4)
    runs = []
    for fused in (False, True):
        mx.random.seed(0)
        net = SiameseNet(get_branch("convnet", 8), mode)
        net.initialize(mx.init.Xavier())
        net(x1, x2)
        set_fused(net, fused)
        net.hybridize(static_alloc=True, static_shape=True)
        loss = ContrastiveLoss()
        # SGD: Adam would turn rounding-sized gradients of opposite signs into whole steps
        cfg = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.0)
        trainer = build_trainer(list(net.collect_params().values()), cfg, 1)
        step = TrainStep(net, loss, trainer, [mx.cpu()], 8)
        losses = [step((x1, x2, y)) for _ in range(3)]
        runs.append((losses, {k: p.data().asnumpy() for k, p in
                              net._collect_params_with_prefix().items()}))
    (plain, wp), (fused, wf) = runs
    assert plain[0] != plain[2]  # it trains
    np.testing.assert_allclose(fused, plain, rtol=1e-5)
    for k in wp:
        np.testing.assert_allclose(wf[k], wp[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_an_export_of_a_fused_network_holds_plain_operators(tmp_path):
    net = SiameseNet(get_branch("convnet", 8), "concat")
    net.initialize(mx.init.Xavier())
    images = np.random.default_rng(0).integers(0, 255, (5, 16, 16, 1), dtype=np.uint8)
    x = mx.nd.array(images.transpose(0, 3, 1, 2) / 255.0)
    net(x, x)
    set_fused(net, True)
    net.hybridize()
    with autograd.predict_mode():
        trained = net.branch(x).asnumpy()
    meta = {"preprocess": {"mean": [0.0], "std": [1.0]}}
    diffs = export_branch(net.branch, tmp_path / "export", meta, images, mx.cpu())
    assert diffs["symbol"] <= 1e-5
    graph = mx.sym.load(str(tmp_path / "export" / "branch-symbol.json"))
    assert PLAIN_OPS <= _ops(graph) and not FUSED_OPS & _ops(graph)
    np.testing.assert_allclose(load_branch(tmp_path / "export")(x).asnumpy(), trained,
                               rtol=1e-5, atol=1e-5)
    assert is_fused(net)  # training goes on with the fused graph


def test_fused_operators_are_used_on_cpus_only():
    assert fused_available([mx.cpu(0), mx.cpu(1)])  # this build has oneDNN
    assert not fused_available([mx.gpu(0)])
    assert not fused_available([mx.cpu(0), mx.gpu(0)])


class _Scaled(HybridBlock):
    """A pair loss whose size is its target: scale x (a . b) per pair."""
    n_inputs = 2

    def hybrid_forward(self, F, a, b, scale):
        return F.sum(a * b, axis=1) * scale


def _step(value: float, squares: bool):
    """(summed loss, the step's gradients) of one step whose loss is scaled by `value`."""
    mx.random.seed(0)
    net = SiameseNet(get_branch("mlp", 4), "concat")
    net.initialize(mx.init.Xavier())
    rng = np.random.default_rng(0)
    x1, x2 = (mx.nd.array(rng.normal(size=(4, 1, 4, 4))) for _ in range(2))
    trainer = build_trainer(list(net.collect_params().values()), TrainConfig(), 1)
    step = (TrainStep if squares else PlainCheckStep)(net, _Scaled(), trainer, [mx.cpu()], 4)
    total = step((x1, x2, mx.nd.full((4,), value)))
    return total, [p.grad() for p in net.collect_params().values()]


def test_the_gradient_check_by_squares_gives_the_verdict_of_the_sums():
    assert _step(1.0, True)[0] == pytest.approx(_step(1.0, False)[0], rel=1e-6)
    # Gradients near 1e20 are finite, but their squares overflow: still a good step.
    total, grads = _step(1e20, True)
    assert np.isfinite(total) and all(np.isfinite(g.asnumpy()).all() for g in grads)
    assert np.isinf(mx.nd.multi_sum_sq(*grads, num_arrays=len(grads)).asnumpy()).any()
    for bad in (np.nan, np.inf):
        for squares in (True, False):
            with pytest.raises(NonFiniteStep):
                _step(bad, squares)
