"""Fused and int8 exports: written, reloaded in a fresh process, verified against the float
branch and on the test pairs, refused when a planted error breaks the tolerance or costs test
AUC, and used unchanged by eval.py and predict."""

from __future__ import annotations

import json
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import eval as eval_cli
from siamese.commands import predict as predict_cli
from siamese.commands.export import main as export_main
from siamese.errors import UserError
from siamese.export import optimize, rewrites
from siamese.formats.bundle import read_meta
from siamese.models.branches import get_branch
from siamese.scoring.bundles import load_branch


def test_compare_by_hand():
    # Rows: identical; (1, 0) vs (0.6, 0.8): cosine 0.6, |difference| 0.8.
    got = optimize.compare(np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 0.0],
                                                                         [0.6, 0.8]]))
    assert got["min_cosine"] == pytest.approx(0.6)
    assert got["mean_cosine"] == pytest.approx(0.8)
    assert got["max_abs_diff"] == pytest.approx(0.8)


def test_auc_loss_rule(tmp_path):
    assert optimize.check_auc(0.9990, 0.9975, tmp_path, "int8", False) == pytest.approx(0.0015)
    with pytest.raises(UserError, match="loses 0.0030 test AUC"):
        optimize.check_auc(0.9990, 0.9960, tmp_path, "int8", False)
    assert optimize.check_auc(0.9990, 0.9960, tmp_path, "int8", True) == pytest.approx(0.003)


def test_mean_to_pool_is_the_same_maths(tmp_path):
    b = get_branch("convnet", 8)
    b.initialize(mx.init.Xavier())
    x = mx.nd.random.normal(shape=(3, 1, 12, 12))
    sym, args, aux = optimize.float_graph(b, x.asnumpy(), tmp_path)
    pooled = rewrites.mean_to_pool(sym)
    ops = [n["op"] for n in json.loads(pooled.tojson())["nodes"]]
    assert "mean" not in ops and ops.count("Pooling") == 3  # two max pools + the global mean
    assert len(rewrites.global_means(pooled)) == 1 and rewrites.global_means(sym) == []
    run = {k: v for k, v in args.items()}
    want = sym.bind(mx.cpu(), dict(run, data=x), aux_states=aux).forward()[0].asnumpy()
    got = pooled.bind(mx.cpu(), dict(run, data=x), aux_states=aux).forward()[0].asnumpy()
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.fixture(scope="module", params=["fused", "int8"])
def optimized(request, trained_run, tmp_path_factory):
    run_dir, root, _ = trained_run
    out = tmp_path_factory.mktemp(request.param) / "export"
    flag = ["--optimize", "fused"] if request.param == "fused" else ["--quantize", "int8"]
    assert export_main([str(run_dir), *flag, "--out", str(out)]) == 0
    return request.param, run_dir, root, out


@pytest.mark.slow
def test_optimized_export_records_and_verifies(optimized):
    kind, run_dir, _, out = optimized
    meta = read_meta(out)
    o = meta["optimized"]
    assert o["kind"] == kind and meta["requires"] == ["MKLDNN"]
    assert o["operators"].get("_sg_mkldnn_conv") == 3 and "BatchNorm" not in o["operators"]
    v, tol = o["verified"], optimize.TOLERANCES[kind]
    assert v["min_cosine"] >= tol["min_cosine"] and v["max_abs_diff"] <= tol["max_abs_diff"]
    assert v["min_cosine"] <= v["mean_cosine"] <= 1 + 1e-6
    t = o["test"]
    assert t["float"]["auc"] - t[kind]["auc"] == pytest.approx(t["auc_loss"])
    assert t["auc_loss"] <= optimize.MAX_AUC_LOSS and not t["forced"]
    # the float figures are the run's own test figures (the float branch = the float export)
    assert t["float"]["auc"] == pytest.approx(
        json.loads((run_dir / "metrics.json").read_text())["test"]["auc"], abs=1e-6)
    if kind == "int8":
        assert o["calibration"]["mode"] == "naive" and o["calibration"]["images"] > 0
        assert "validation" in o["calibration"]["source"]
        assert "_contrib_quantize_v2" in o["operators"]
        # the global mean pools in float: dequantized before it, requantized for the Dense
        assert o["operators"].get("Pooling") == 1 and "_contrib_dequantize" in o["operators"]
    else:
        assert o["calibration"] is None


@pytest.mark.slow
def test_every_export_kind_writes_the_same_complete_metadata(optimized):
    """model.json as written (not as this package's reader completes it) names the files and
    holds every key of the float export's, so a consumer following docs/export.md without
    this package reads any kind the same way."""
    _, run_dir, _, out = optimized
    raw = json.loads((out / "model.json").read_text())
    float_raw = json.loads((run_dir / "export" / "model.json").read_text())
    assert raw["files"] == float_raw["files"] == {"symbol": "branch-symbol.json",
                                                  "params": "branch-0000.params"}
    assert set(float_raw) <= set(raw)
    for name in raw["files"].values():
        assert (out / name).is_file()


@pytest.mark.slow
def test_optimized_export_reloads_in_a_fresh_process(optimized):
    _, _, _, out = optimized
    x = np.random.default_rng(0).normal(size=(4, 1, 16, 16)).astype(np.float32)
    np.save(out.parent / "x.npy", x)
    code = ("import sys, numpy as np, mxnet as mx; from mxnet import gluon; d = sys.argv[1]; "
            "b = gluon.SymbolBlock.imports(d + '/branch-symbol.json', ['data'], "
            "d + '/branch-0000.params'); "
            "np.save(d + '/../y.npy', b(mx.nd.array(np.load(d + '/../x.npy'))).asnumpy())")
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, timeout=120)
    here = load_branch(out)(mx.nd.array(x)).asnumpy()
    np.testing.assert_allclose(np.load(out.parent / "y.npy"), here, atol=1e-6)


@pytest.mark.slow
def test_consumers_accept_optimized_exports(optimized, capsys):
    _, run_dir, root, out = optimized
    report = out.parent / "report.json"
    assert eval_cli.main([str(out), "--pairs", str(run_dir / "pairs" / "test.csv"), "--root",
                          str(root), "--out", str(report)]) == 0
    meta = read_meta(out)
    assert json.loads(report.read_text())["auc"] == pytest.approx(
        meta["optimized"]["test"][meta["optimized"]["kind"]]["auc"], abs=1e-6)
    a, b = sorted(root.glob("class0/*.png"))[:2]
    assert predict_cli.main([str(out), str(a), str(b), "--json"]) == 0
    assert "distance" in capsys.readouterr().out


def _planted(kind: str, scale: float):
    """The optimizer of `kind`, then the first convolution's weights perturbed by noise of
    this scale (scale 0: zeroed, so every image gets the same embedding)."""
    real = rewrites.OPTIMIZERS[kind]

    def planted(sym, args, aux, *calibration):
        sym, args, aux, info = real.rewrite(sym, args, aux, *calibration)
        name = next(k for k in sorted(args) if "conv0_weight" in k)
        w = args[name].asnumpy()
        noise = np.random.default_rng(0).normal(size=w.shape)
        changed = w + scale * noise if scale else np.zeros_like(w)
        args = dict(args, **{name: mx.nd.array(changed, dtype=w.dtype)})
        return sym, args, aux, info
    return rewrites.Optimizer(planted, calibrated=real.calibrated)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fused", "int8"])
def test_a_planted_error_is_refused(kind, trained_run, tmp_path, monkeypatch):
    run_dir, _, _ = trained_run
    monkeypatch.setitem(rewrites.OPTIMIZERS, kind, _planted(kind, 50.0 if kind == "int8"
                                                            else 0.5))
    flag = ["--optimize", "fused"] if kind == "fused" else ["--quantize", "int8"]
    out = tmp_path / "export"
    assert export_main([str(run_dir), *flag, "--out", str(out)]) == 1  # ExportMismatch
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_auc_loss_is_refused_unless_forced(trained_run, tmp_path, monkeypatch, capsys):
    """A tolerance wide open lets the planted error through to the test pairs, which refuse it
    (exit 2, nothing written); --force keeps it and model.json says so."""
    run_dir, _, _ = trained_run
    monkeypatch.setitem(rewrites.OPTIMIZERS, "fused", _planted("fused", 0.0))
    monkeypatch.setitem(optimize.TOLERANCES, "fused", {"min_cosine": -1.0,
                                                       "max_abs_diff": 1e9})
    out = tmp_path / "export"
    assert export_main([str(run_dir), "--optimize", "fused", "--out", str(out)]) == 2
    assert "test AUC" in capsys.readouterr().err and not out.exists()
    assert export_main([str(run_dir), "--optimize", "fused", "--out", str(out),
                        "--force"]) == 0
    t = read_meta(out)["optimized"]["test"]
    assert t["forced"] and t["auc_loss"] > optimize.MAX_AUC_LOSS
