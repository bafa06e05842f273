"""SiameseNet: one shared branch, twice == concat where they must agree, hybridize and export."""

from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from siamese.errors import UserError
from siamese.models.architectures import SiameseNet
from siamese.models.branches import BRANCHES, get_branch
from siamese.scoring.bundles import load_branch

SHAPE = (4, 1, 16, 16)


def make(name: str, mode: str, seed: int = 0) -> SiameseNet:
    mx.random.seed(seed)
    net = SiameseNet(get_branch(name, 8), mode)
    net.initialize(mx.init.Xavier())
    x = mx.nd.zeros(SHAPE)
    net(x, x)
    return net


def inputs(seed: int = 1):
    rng = np.random.default_rng(seed)
    return [mx.nd.array(rng.normal(size=SHAPE)) for _ in range(2)]


def copy_params(src: SiameseNet, dst: SiameseNet) -> None:
    s, d = src._collect_params_with_prefix(), dst._collect_params_with_prefix()
    for k in s:
        d[k].set_data(s[k].data())


def grads_of(net: SiameseNet, x1, x2) -> dict:
    with autograd.record():
        e1, e2 = net(x1, x2)
        out = (e1 * mx.nd.arange(8)).sum() + (e2 * e2).sum()
    out.backward()
    return {k: p.grad().asnumpy() for k, p in net._collect_params_with_prefix().items()}


def test_one_parameter_set_shared_by_both_sides():
    net = make("convnet", "twice")
    mine = list(net.collect_params().values())
    branch = list(net.branch.collect_params().values())
    assert len(mine) == len(branch) > 0
    assert all(a is b for a, b in zip(mine, branch))  # the same objects, not copies


def test_unknown_branch_lists_valid_names():
    with pytest.raises(UserError, match="convnet"):
        get_branch("resnet9000", 8)


@pytest.mark.parametrize("name", sorted(BRANCHES))
def test_twice_equals_concat_in_inference(name):
    a, b = make(name, "twice"), make(name, "concat", seed=5)
    copy_params(a, b)
    x1, x2 = inputs()
    for ea, eb in zip(a(x1, x2), b(x1, x2)):
        np.testing.assert_allclose(ea.asnumpy(), eb.asnumpy(), rtol=1e-5, atol=1e-6)


def test_twice_equals_concat_gradients_without_batchnorm():
    a, b = make("mlp", "twice"), make("mlp", "concat", seed=5)
    copy_params(a, b)
    x1, x2 = inputs()
    ga, gb = grads_of(a, x1, x2), grads_of(b, x1, x2)
    for k in ga:
        np.testing.assert_allclose(ga[k], gb[k], rtol=1e-4, atol=1e-6)


def test_batchnorm_in_training_makes_twice_and_concat_differ():
    # Documented behaviour: concat normalises over 2B images, twice over each side's B.
    a, b = make("convnet", "twice"), make("convnet", "concat", seed=5)
    copy_params(a, b)
    x1, x2 = inputs()
    with autograd.record():
        ea, _ = a(x1, x2)
        eb, _ = b(x1, x2)
    assert np.abs(ea.asnumpy() - eb.asnumpy()).max() > 1e-3


@pytest.mark.parametrize("mode", ["twice", "concat"])
def test_shared_gradient_is_sum_of_both_sides(mode):
    net = make("mlp", mode)
    x1, x2 = inputs()
    both = grads_of(net, x1, x2)
    # Each side alone: the same branch, the other side's term cut out.
    br = net.branch
    params = br._collect_params_with_prefix()
    with autograd.record():
        left = (br(x1) * mx.nd.arange(8)).sum()
    left.backward()
    g_left = {k: p.grad().asnumpy().copy() for k, p in params.items()}
    with autograd.record():
        e2 = br(x2)
        right = (e2 * e2).sum()
    right.backward()
    for k, p in params.items():
        np.testing.assert_allclose(both[f"branch.{k}"], g_left[k] + p.grad().asnumpy(),
                                   rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(BRANCHES))
@pytest.mark.parametrize("mode", ["twice", "concat"])
def test_hybridized_equals_imperative(name, mode):
    net = make(name, mode)
    x1, x2 = inputs()
    before = [e.asnumpy() for e in net(x1, x2)]
    net.hybridize(static_alloc=True, static_shape=True)
    after = [e.asnumpy() for e in net(x1, x2)]
    for u, v in zip(before, after):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(BRANCHES))
def test_exported_branch_reloads_and_matches(name, tmp_path):
    net = make(name, "concat")
    net.hybridize(static_alloc=True, static_shape=True)
    x1, _ = inputs()
    expected = net.branch(x1).asnumpy()
    net.branch.export(str(tmp_path / "branch"))
    block = load_branch(tmp_path)
    assert isinstance(block, gluon.SymbolBlock)
    # A batch size other than the traced one, in a fresh block with only the symbol inputs.
    x = mx.nd.concat(x1, x1[:1], dim=0)
    got = block(x).asnumpy()
    np.testing.assert_allclose(got[:4], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[4], expected[0], rtol=1e-5, atol=1e-6)
