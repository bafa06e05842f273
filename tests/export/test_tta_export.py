"""Test-time averaging inside the export (`siamese export RUN_DIR --tta K`): the shifts by hand,
the reloaded symbol against eval.tta's averaging of the plain export, eval.py on both, the
threshold chosen on validation pairs, the serving and ONNX exports, and the refusals."""

from __future__ import annotations

import json
import shutil

import mxnet as mx
import numpy as np
import pytest
from conftest import extra, pair_images, random_labelled_pairs, write_config

import eval as eval_cli
import train
from siamese.commands.export import main as export_main
from siamese.data.pairfiles import read_pair_file
from siamese.errors import UserError
from siamese.eval.thresholds import with_threshold
from siamese.eval.tta import averaged, pair_list_scores, shifted
from siamese.export.tta import ShiftAveraged, shifted_copies
from siamese.formats.bundle import read_meta
from siamese.formats.preprocess import to_tensor
from siamese.scoring.bundles import load_branch, open_comparator


def test_each_copy_moves_one_pixel_the_right_way():
    x = np.zeros((1, 1, 4, 5), np.float32)
    x[0, 0, 1, 2] = 1.0  # one bright pixel, row 1, column 2, away from the edges
    got = shifted_copies(mx.nd, mx.nd.array(x), 1).asnumpy()[:, 0]
    assert got.shape == (5, 4, 5)
    where = [tuple(np.argwhere(c == 1.0)[0]) for c in got]
    assert where == [(1, 2), (2, 2), (0, 2), (1, 3), (1, 1)]  # itself, down, up, right, left
    assert all(c.sum() == 1.0 for c in got)  # moved, not smeared


def test_edges_are_repeated_as_eval_tta_repeats_them():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 6, 7, 3), dtype=np.uint8)
    x = images.transpose(0, 3, 1, 2).astype(np.float32)  # (B, C, H, W)
    got = shifted_copies(mx.nd, mx.nd.array(x), 2).asnumpy()
    want = np.concatenate([images] + shifted(images, 2)).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(got, want)


class _Flatten(mx.gluon.HybridBlock):
    def hybrid_forward(self, F, x):
        return F.flatten(x)


@pytest.mark.parametrize("normalized", [False, True])
def test_wrapper_is_the_mean_of_the_five_embeddings(normalized):
    x = np.zeros((2, 1, 3, 3), np.float32)
    x[0, 0, 0, 0] = 5.0  # a corner: the down and right copies repeat it
    x[1, 0, 1, 1] = 5.0  # the centre: a plus of five pixels
    block = ShiftAveraged(_Flatten(), 1, normalized)
    block.hybridize()
    got = block(mx.nd.array(x)).asnumpy()
    corner = np.array([[3, 1, 0], [1, 0, 0], [0, 0, 0]], np.float64).ravel()  # x 5 / 5
    centre = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.float64).ravel()
    want = np.stack([corner, centre])
    if normalized:
        want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_a_negative_shift_exits_2_before_any_work(tmp_path, capsys):
    assert export_main([str(tmp_path), "--tta", "-1"]) == 2
    assert "--tta: a shift in pixels, 0 or more" in capsys.readouterr().err


def test_eval_tta_refuses_what_it_does_not_average(tmp_path, capsys):
    assert eval_cli.main([str(tmp_path), "--tta", "1", "--retrieval"]) == 2
    assert "--tta: averages pairs, --far, --n-way and --episode-file only" in \
        capsys.readouterr().err


@pytest.fixture(scope="module")
def tta_export(trained_run, tmp_path_factory):
    """The shared tiny run exported with --tta 1 into its own folder."""
    run_dir, root, _ = trained_run
    out = tmp_path_factory.mktemp("tta") / "export-tta1"
    assert export_main([str(run_dir), "--tta", "1", "--out", str(out)]) == 0
    return run_dir, root, out



@pytest.mark.slow
def test_symbol_equals_eval_tta_over_the_plain_export(tta_export):
    run_dir, root, out = tta_export
    meta = read_meta(out)
    pre = meta["preprocess"]
    images = pair_images(run_dir, root)  # uint8 (N, 16, 16, 1)
    plain = load_branch(run_dir / "export")

    def embed(x):
        return plain(mx.nd.array(to_tensor(x, pre["mean"], pre["std"]))).asnumpy()

    net = mx.gluon.SymbolBlock.imports(str(out / "branch-symbol.json"), ["data"],
                                       str(out / "branch-0000.params"))
    got = net(mx.nd.array(to_tensor(images, pre["mean"], pre["std"]))).asnumpy()
    want = averaged(embed, images, 1)
    assert got.shape == (len(images), meta["embedding_size"])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(got - embed(images)).max() > 1e-3  # averaging changed the embeddings
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    sym = json.loads((out / "branch-symbol.json").read_text())
    inputs = [n["name"] for n in sym["nodes"] if n["op"] == "null"
              and not n["name"].startswith(("convnet", "member"))]
    assert inputs == ["data"]


@pytest.mark.slow
def test_model_json_records_tta_and_the_validation_threshold(tta_export):
    run_dir, root, out = tta_export
    meta, plain = read_meta(out), read_meta(run_dir / "export")
    assert meta["tta"] == 1 and plain["tta"] == 0
    comp, _ = open_comparator(run_dir / "export", 16)
    val = read_pair_file(run_dir / "pairs" / "val.csv", root)
    scores, _, _ = pair_list_scores(comp, val, root, (16, 16), 1, 1)
    rule = plain["score"]["threshold_rule"]
    chosen = with_threshold(plain["score"], scores, val.labels, rule)["threshold"]
    assert meta["score"]["threshold"] == pytest.approx(chosen, abs=1e-5)
    assert meta["score"]["threshold"] != plain["score"]["threshold"]  # chosen again


@pytest.mark.slow
def test_eval_of_the_tta_export_equals_eval_tta_of_the_plain_one(tta_export, tmp_path):
    run_dir, root, out = tta_export
    pairs = random_labelled_pairs(root, tmp_path / "pairs.csv")
    reports = {}
    for name, target, more in (("export", out, []), ("eval", run_dir / "export", ["--tta", "1"]),
                               ("plain", run_dir / "export", [])):
        path = tmp_path / f"{name}.json"
        assert eval_cli.main([str(target), "--pairs", str(pairs), "--root", str(root),
                              "--out", str(path), *more]) == 0
        reports[name] = json.loads(path.read_text())
    a, b, c = reports["export"], reports["eval"], reports["plain"]
    assert 0.1 < a["auc"] < 0.9 and a["auc"] == pytest.approx(b["auc"], abs=1e-9)
    assert a["eer"] == pytest.approx(b["eer"], abs=1e-9)
    assert a["best_threshold"] == pytest.approx(b["best_threshold"], abs=1e-5)
    assert abs(c["best_threshold"] - a["best_threshold"]) > 1e-4  # the test can fail
    assert a["tta"] == b["tta"] == 1 and c["tta"] == 0


@pytest.mark.slow
def test_eval_tta_on_an_export_that_averages_is_refused(tta_export, capsys):
    run_dir, root, out = tta_export
    assert eval_cli.main([str(out), "--tta", "1", "--pairs", str(run_dir / "pairs" /
                                                                  "test.csv"),
                          "--root", str(root)]) == 2
    assert "already averages over shifts of 1 pixels" in capsys.readouterr().err


@pytest.mark.slow
def test_an_older_export_without_the_key_loads_and_a_bad_value_is_refused(tta_export,
                                                                          tmp_path):
    run_dir, _, _ = tta_export
    old = tmp_path / "old"
    shutil.copytree(run_dir / "export", old)
    meta = json.loads((old / "model.json").read_text())
    del meta["tta"]
    (old / "model.json").write_text(json.dumps(meta))
    assert "tta" not in read_meta(old)
    for bad in (-1, True, "1", 1.0, None):
        (old / "model.json").write_text(json.dumps(dict(meta, tta=bad)))
        with pytest.raises(UserError, match="inconsistent export metadata"):
            read_meta(old)


@pytest.mark.slow
@pytest.mark.parametrize("flag", [["--optimize", "fused"], ["--quantize", "int8"]])
def test_serving_exports_average_too(tta_export, tmp_path, flag, capsys):
    run_dir, root, out = tta_export
    kind = flag[1]
    assert export_main([str(run_dir), "--tta", "1", *flag]) == 0
    assert (run_dir / f"export-{kind}-tta1").is_dir()  # the default folder
    served = run_dir / f"export-{kind}-tta1"
    meta = read_meta(served)
    assert meta["tta"] == 1 and meta["optimized"]["kind"] == kind
    assert {"Pad", "SliceChannel", "add_n"} <= set(meta["optimized"]["operators"])
    images = pair_images(run_dir, root)
    x = mx.nd.array(to_tensor(images, meta["preprocess"]["mean"], meta["preprocess"]["std"]))
    got, want = load_branch(served)(x).asnumpy(), load_branch(out)(x).asnumpy()
    cosine = (got * want).sum(1)  # both unit vectors
    assert cosine.min() >= (0.99999 if kind == "fused" else 0.95)
    assert meta["score"]["threshold"] == read_meta(out)["score"]["threshold"]
    shutil.rmtree(served)


@pytest.mark.slow
def test_onnx_of_the_averaging_branch_agrees_on_another_batch_size(trained_run, tmp_path):
    extra("onnxruntime")
    from siamese.export.onnx import onnx_run

    run_dir, root, _ = trained_run
    out = tmp_path / "onnx"
    assert export_main([str(run_dir), "--tta", "1", "--onnx", "--out", str(out)]) == 0
    meta = read_meta(out)
    x = to_tensor(pair_images(run_dir, root)[:3], meta["preprocess"]["mean"],
                  meta["preprocess"]["std"])  # batch 3: not the one exported with
    onx = onnx_run(out / "branch.onnx", {"data": x})
    sym = load_branch(out)(mx.nd.array(x)).asnumpy()
    assert onx.shape == sym.shape == (3, meta["embedding_size"])
    np.testing.assert_allclose(onx, sym, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("arch,loss,embeds", [("two_channel", "logistic", False),
                                              ("pseudo_siamese", "contrastive", True)])
def test_only_a_siamese_branch_is_wrapped(trained_run, tmp_path, capsys, arch, loss, embeds):
    _, root, _ = trained_run
    cfg = write_config(tmp_path / "c.yaml", root, model={"architecture": arch,
                                                         "embedding_size": 8},
                       loss={"name": loss}, train={"epochs": 1})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert export_main([str(tmp_path / "run"), "--tta", "1"]) == 2
    assert "--tta: averages the embeddings of one siamese branch" in capsys.readouterr().err
    assert not (tmp_path / "run" / "export-tta1").exists()
    if not embeds:  # a pair scorer: eval.py --tta is refused too
        assert eval_cli.main([str(tmp_path / "run"), "--tta", "1"]) == 2
        assert "is a pair_scorer, which scores pairs" in capsys.readouterr().err
