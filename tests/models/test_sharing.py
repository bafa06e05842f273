"""How much to share: pseudo-siamese branches sharing chosen layers, the sharing map, summed
and separate gradients, copies detected as unshared, and every architecture trained, exported,
reloaded and evaluated for real."""

from __future__ import annotations

import copy
import json

import mxnet as mx
import numpy as np
import pytest
from conftest import extra, make_folder, write_config

import eval as eval_cli
import train
from siamese.commands.gallery import main as gallery_main
from siamese.commands.predict import main as predict_main
from siamese.config import from_dict
from siamese.data.views import blur, invert
from siamese.errors import UserError
from siamese.models.branches import MLP, ConvNet
from siamese.models.sharing import build_pseudo_siamese, format_sharing_map, matches, sharing_map
from siamese.scoring.bundles import open_comparator


def convnet(prefix, params=None):
    return ConvNet(8, prefix=prefix, params=params)


def mlp(prefix, params=None):
    return MLP(4, normalize=False, hidden=3, prefix=prefix, params=params)


def uses(left, right):
    return {"left": left._collect_params_with_prefix(),
            "right": right._collect_params_with_prefix()}


def test_patterns():
    assert matches("embed.weight", "embed") and matches("features.8.weight", "features.8")
    assert not matches("features.80.weight", "features.8")
    assert matches("features.9.gamma", "features.*.gamma")


def test_shared_layers_are_one_object_and_counted_once():
    left, right, shared = build_pseudo_siamese(convnet, ["embed"])
    assert shared == ["embed.weight", "embed.bias"]
    assert left.embed.weight is right.embed.weight and left.embed.bias is right.embed.bias
    assert left.features[0].weight is not right.features[0].weight
    x = mx.nd.zeros((2, 1, 8, 8))
    for b in (left, right):
        b.initialize()
        b(x)  # deferred shapes known
    report = sharing_map(uses(left, right))
    t = report["totals"]
    # Per branch: conv 32*1*9 + 64*32*9 + 128*64*9 = 92448; BN 4 * (32 + 64 + 128) = 896;
    # embed 8 * 128 + 8 = 1032. Shared: the embed weight and bias.
    per_branch = 92448 + 896 + 1032
    assert t["elements_without_sharing"] == 2 * per_branch
    assert t["elements"] == 2 * per_branch - 1032
    assert (t["shared_parameters"], t["shared_elements"]) == (2, 1032)
    assert t["parameters"] == 2 * 17 - 2
    rows = {r["name"]: r for r in report["rows"]}
    assert rows[left.embed.weight.name]["used_by"] == {"left": "embed.weight",
                                                       "right": "embed.weight"}
    assert rows[right.features[0].weight.name]["status"] == "right only"
    text = format_sharing_map(report)
    assert "32 parameters (2 shared)" in text
    json.dumps(report)  # JSON-serialisable


def test_empty_share_shares_nothing_and_bad_pattern_is_named():
    left, right, shared = build_pseudo_siamese(mlp, [])
    assert shared == [] and left.hidden.weight is not right.hidden.weight
    with pytest.raises(UserError, match="model.share: 'embedding' matches no parameter"):
        build_pseudo_siamese(mlp, ["embedding"])


def _init(block):
    block.initialize(mx.init.Uniform(0.5), force_reinit=True)


def test_shared_gradient_is_the_sum_of_both_sides_unshared_only_its_own():
    mx.random.seed(1)
    left, right, _ = build_pseudo_siamese(mlp, ["hidden"])
    for b in (left, right):
        _init(b)
    rng = np.random.default_rng(0)
    x1, x2 = (mx.nd.array(rng.normal(size=(4, 5))) for _ in range(2))

    def grads(fn):
        params = {id(p): p for b in (left, right) for p in b.collect_params().values()}
        for p in params.values():
            p.zero_grad()
        with mx.autograd.record():
            loss = fn()
        loss.backward()
        return {k: p.grad().asnumpy().copy() for k, p in params.items()}

    both = grads(lambda: left(x1).sum() + 2 * right(x2).sum())
    only_left = grads(lambda: left(x1).sum() + 0 * right(x2).sum())
    only_right = grads(lambda: 0 * left(x1).sum() + 2 * right(x2).sum())
    w = id(left.hidden.weight)
    assert w == id(right.hidden.weight)
    np.testing.assert_allclose(both[w], only_left[w] + only_right[w], rtol=1e-5, atol=1e-6)
    assert np.abs(only_left[w]).sum() > 0 and np.abs(only_right[w]).sum() > 0
    for side, own in ((left, only_left), (right, only_right)):
        k = id(side.embed.weight)
        np.testing.assert_allclose(both[k], own[k], rtol=1e-6)
    # By hand for the right embedding: d(2 * sum(W h + b))/dW = 2 * sum over rows of h.
    h = right.hidden(x2).asnumpy()
    np.testing.assert_allclose(both[id(right.embed.weight)], 2 * np.tile(h.sum(0), (4, 1)),
                               rtol=1e-5)


def test_a_copied_branch_is_reported_unshared_and_drifts():
    mx.random.seed(2)
    left = mlp("left_")
    _init(left)
    left(mx.nd.zeros((1, 5)))
    right = copy.deepcopy(left)  # equal values, other objects: the classic mistake
    np.testing.assert_array_equal(left.hidden.weight.data().asnumpy(),
                                  right.hidden.weight.data().asnumpy())
    report = sharing_map(uses(left, right))
    assert report["totals"]["shared_parameters"] == 0
    assert all(r["status"] in ("left only", "right only") for r in report["rows"])
    # One step of the left side: the copy does not follow.
    trainer = mx.gluon.Trainer(left.collect_params(), "sgd", {"learning_rate": 0.1})
    with mx.autograd.record():
        loss = left(mx.nd.ones((2, 5))).sum()
    loss.backward()
    trainer.step(1)
    assert not np.allclose(left.hidden.weight.data().asnumpy(),
                           right.hidden.weight.data().asnumpy())


def test_shared_parameter_stays_one_object_after_a_step():
    left, right, _ = build_pseudo_siamese(mlp, ["hidden"])
    for b in (left, right):
        _init(b)
    from siamese.train.engine import unique_params

    params = unique_params(left, right)
    assert len(params) == 6  # hidden weight+bias once, two embed weights+biases
    trainer = mx.gluon.Trainer(params, "sgd", {"learning_rate": 0.1})
    x = mx.nd.ones((2, 5))
    with mx.autograd.record():
        loss = left(x).sum() + right(x).sum()
    loss.backward()
    trainer.step(1)
    assert left.hidden.weight is right.hidden.weight
    assert not np.allclose(left.embed.weight.data().asnumpy(),
                           right.embed.weight.data().asnumpy())


def test_right_views_by_hand():
    x = np.array([[0, 0, 0, 0, 160]], np.uint8).reshape(1, 1, 5, 1)
    assert invert(x).ravel().tolist() == [255, 255, 255, 255, 95]
    # Along W, kernel [1, 4, 6, 4, 1] / 16, edges repeated (two 160s beyond the end): the
    # last three positions get 160 * (1, 4+1, 6+4+1) / 16 = 10, 50, 110.
    assert blur(x).ravel().tolist() == [0, 0, 10, 50, 110]


@pytest.mark.parametrize("raw, message", [
    ({"model": {"architecture": "two_channel"}}, "two_channel outputs a score per pair"),
    ({"model": {"architecture": "pseudo_siamese"}, "loss": {"name": "triplet"}},
     "loss.name: triplet needs model.architecture: siamese"),
    ({"model": {"share": ["embed"]}}, "model.share: only for model.architecture: pseudo"),
    ({"model": {"architecture": "three_branch"}}, "model.architecture: expected one of"),
    ({"data": {"right_view": "rotate"}}, "data.right_view: expected one of"),
])
def test_config_rules(raw, message):
    with pytest.raises(UserError, match=message):
        from_dict(raw)


ARCHITECTURES = {
    "siamese": {"model": {"forward_mode": "twice"}},
    "pseudo_siamese": {"model": {"architecture": "pseudo_siamese",
                                 "share": ["features.8", "embed"]}},
    "two_channel": {"model": {"architecture": "two_channel"}, "loss": {"name": "logistic"}},
}


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_each_architecture_trains_exports_reloads_and_evaluates(tmp_path, arch, capsys):
    root = make_folder(tmp_path / "images", classes=4, per_class=10)
    sections = dict(ARCHITECTURES[arch], data={"right_view": "invert"})
    cfg = write_config(tmp_path / "c.yaml", root, **sections)
    run_dir = tmp_path / "run"
    assert train.main([str(cfg), "--run-dir", str(run_dir)]) == 0
    m = json.loads((run_dir / "metrics.json").read_text())
    meta = json.loads((run_dir / "export" / "model.json").read_text())
    kind = {"siamese": "branch", "pseudo_siamese": "two_branches",
            "two_channel": "pair_scorer"}[arch]
    assert meta["architecture"] == arch and meta["kind"] == kind
    assert meta["preprocess"]["right_view"] == "invert"
    assert meta["verified"]["max_abs_diff"]["symbol"] <= 1e-5
    files = sorted(p.name for p in (run_dir / "export").iterdir())
    expected_files = {"branch": ["branch-0000.params", "branch-symbol.json"],
                      "two_branches": ["left-0000.params", "left-symbol.json",
                                       "right-0000.params", "right-symbol.json"],
                      "pair_scorer": ["scorer-0000.params", "scorer-symbol.json"]}[kind]
    assert files == sorted(expected_files + ["model.json"])
    # The sharing map in the run directory.
    sharing = json.loads((run_dir / "sharing.json").read_text())
    t = sharing["totals"]
    if arch == "siamese":
        assert t["shared_parameters"] == t["parameters"]  # one branch: everything shared
    elif arch == "pseudo_siamese":
        assert t["shared_parameters"] == 3  # conv 8 weight, embed weight and bias
    else:
        assert sharing["uses"] == ["pair"] and t["shared_parameters"] == 0
    # The export alone scores the run's test pairs exactly as training did.
    out = tmp_path / "e.json"
    assert eval_cli.main([str(run_dir / "export"), "--pairs", str(run_dir / "pairs/test.csv"),
                          "--root", str(root), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["auc"] == pytest.approx(m["test"]["auc"], abs=1e-9)
    assert report["accuracy"] == pytest.approx(m["test"]["accuracy"], abs=1e-9)
    assert report["model_kind"] == kind
    assert ("no embeddings" in report["scoring"]) == (kind == "pair_scorer")
    assert eval_cli.main([str(run_dir), "--n-way", "2", "--root", str(root), "--episodes",
                          "20", "--out", str(out)]) == 0
    # predict compares two files from the export alone, left then right.
    a, b = sorted((root / "class0").iterdir())[:2]
    capsys.readouterr()
    assert predict_main([str(run_dir / "export"), str(a), str(b), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    comparator, _ = open_comparator(run_dir / "export", 2)
    from siamese.commands.predict import _pixels

    images = np.stack([_pixels(meta, a), _pixels(meta, b)])
    assert r["score"] == pytest.approx(float(comparator.score(images, [0], [1])[0]))
    code = predict_main([str(run_dir / "export"), "--embed", str(root), "--out",
                         str(tmp_path / "e.npz"), "--side", "right"])
    assert code == (2 if kind == "pair_scorer" else 0)
    # Identification: a gallery (probes go through the right side: the other network of a
    # pseudo-siamese export, the inverted view here; a pair scorer has no embeddings to
    # enroll), retrieval and the open-set protocol.
    g = tmp_path / "g.npz"
    code = gallery_main(["build", str(run_dir / "export"), str(root), "--out", str(g)])
    assert code == (2 if kind == "pair_scorer" else 0)
    assert eval_cli.main([str(run_dir), "--retrieval", "--open-set", "--shots", "2", "--root",
                          str(root), "--out", str(out)]) == (2 if kind == "pair_scorer" else 0)
    if kind != "pair_scorer":
        capsys.readouterr()
        assert gallery_main(["query", str(g), str(a), "--json"]) == 0
        top = json.loads(capsys.readouterr().out)[0]["top"]
        assert sorted(t["identity"] for t in top) == ["class0", "class1", "class2", "class3"]
        report = json.loads(out.read_text())
        assert report["retrieval"]["n_queries"] == 40 and report["open_set"]["n_enrolled"] == 2


@pytest.mark.slow
def test_two_channel_onnx_export_has_left_and_right_inputs(tmp_path):
    extra("onnxruntime")
    root = make_folder(tmp_path / "images", classes=4, per_class=10)
    cfg = write_config(tmp_path / "c.yaml", root, **ARCHITECTURES["two_channel"],
                       train={"epochs": 1}, export={"onnx": True})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "run")]) == 0
    import onnxruntime as ort

    meta = json.loads((tmp_path / "run" / "export" / "model.json").read_text())
    assert meta["files"]["onnx"] == "scorer.onnx"
    assert meta["verified"]["max_abs_diff"]["onnx"] <= 1e-5
    session = ort.InferenceSession(str(tmp_path / "run" / "export" / "scorer.onnx"),
                                   providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["left", "right"]
    x = np.random.default_rng(0).normal(size=(3, 1, 16, 16)).astype(np.float32)
    p = session.run(None, {"left": x, "right": x[::-1].copy()})[0]
    assert p.shape == (3,) and ((p > 0) & (p < 1)).all()
