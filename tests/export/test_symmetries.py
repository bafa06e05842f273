"""Test-time symmetries (export.symmetries, `siamese export --symmetries NAME`, `eval.py
--symmetries NAME`): the turns by hand, the graph's turns against numpy's, the side-by-side
embedding, the invariance of the dihedral distance, the reloaded export against eval.py's numpy
version over the plain export, the threshold chosen again on validation pairs, training with
the key, ONNX, and the refusals."""

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
from siamese.config import load_config
from siamese.config.schema import ModelConfig
from siamese.data.pairfiles import read_pair_file
from siamese.data.turns import SYMMETRIES, turned
from siamese.errors import UserError
from siamese.eval.thresholds import with_threshold
from siamese.eval.tta import pair_list_scores, symmetric
from siamese.export.symmetries import Symmetric, reverser, turn
from siamese.formats.bundle import read_meta
from siamese.formats.preprocess import to_tensor
from siamese.models.architectures import build_model
from siamese.scoring.bundles import load_branch, open_comparator


def test_turns_by_hand():
    x = np.array([[1, 2], [3, 4]], np.uint8).reshape(1, 2, 2, 1)
    got = {t: turned(x, t)[0, :, :, 0].tolist() for t in range(8)}
    assert got[0] == [[1, 2], [3, 4]]
    assert got[1] == [[2, 4], [1, 3]]  # a quarter turn anticlockwise
    assert got[2] == [[4, 3], [2, 1]]
    assert got[3] == [[3, 1], [4, 2]]
    assert got[4] == [[2, 1], [4, 3]]  # the mirror image, left to right
    assert got[5] == [[1, 3], [2, 4]]  # mirrored, then turned: the transpose
    assert len({str(v) for v in got.values()}) == 8  # eight different images


@pytest.mark.parametrize("shape", [(2, 5, 5, 3), (2, 4, 6, 1)])
def test_graph_turns_equal_numpy_turns(shape):
    images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    x = mx.nd.array(images.transpose(0, 3, 1, 2).astype(np.float32))
    for t in range(8):
        if shape[1] != shape[2] and t % 4:
            continue  # only the mirror for non-square images (flip)
        got = turn(mx.nd, x, t, mx.nd.array(reverser(shape[2]))).asnumpy()
        np.testing.assert_array_equal(got, turned(images, t).transpose(0, 3, 1, 2))


class _Flatten(mx.gluon.HybridBlock):
    def hybrid_forward(self, F, x):
        return F.flatten(x)


@pytest.mark.parametrize("name", ["flip", "rotations", "dihedral"])
def test_the_embedding_is_the_turned_embeddings_side_by_side(name):
    images = np.random.default_rng(1).integers(0, 256, (3, 4, 4, 1), dtype=np.uint8)
    x = images.transpose(0, 3, 1, 2).astype(np.float32)
    block = Symmetric(_Flatten(), name, 4)
    block.initialize()
    block.hybridize()
    got = block(mx.nd.array(x)).asnumpy()
    turns = SYMMETRIES[name]
    want = np.concatenate([turned(images, t).reshape(3, -1) for t in turns], 1)
    np.testing.assert_allclose(got, want / np.sqrt(len(turns)), rtol=1e-6)
    numpy_side = symmetric(lambda im: im.reshape(len(im), -1).astype(np.float32), images, 0,
                           name)
    np.testing.assert_allclose(got, numpy_side, rtol=1e-6)


@pytest.mark.parametrize("name", ["rotations", "dihedral"])
def test_turning_both_images_leaves_their_distance_unchanged(name):
    """The turns of `name` are a group: turning both images permutes the V parts of both
    embeddings alike, so the distance is the same, for any branch (here a real convnet)."""
    branch = build_model(ModelConfig(embedding_size=8, widths=[4, 8])).branch
    branch.initialize(mx.init.Xavier())
    block = Symmetric(branch, name, 12)
    block.reverse.initialize()
    block.hybridize()
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 256, (2, 4, 12, 12, 1), dtype=np.uint8)

    def dist(p, q):
        e = [block(mx.nd.array(to_tensor(z, [0.5], [0.5]))).asnumpy() for z in (p, q)]
        return np.linalg.norm(e[0] - e[1], axis=1)

    plain = dist(a, b)
    plain_branch = [branch(mx.nd.array(to_tensor(z, [0.5], [0.5]))).asnumpy() for z in (a, b)]
    assert not np.allclose(plain, np.linalg.norm(plain_branch[0] - plain_branch[1], axis=1))
    for t in SYMMETRIES[name][1:]:
        np.testing.assert_allclose(dist(turned(a, t), turned(b, t)), plain, rtol=1e-4)


@pytest.mark.parametrize("sets,message", [
    ({"export": {"symmetries": "dihedral"}, "data": {"image_size": [16, 20]}},
     "needs square images; data.image_size is [16, 20]"),
    ({"export": {"symmetries": "spin"}}, "export.symmetries"),
    ({"export": {"symmetries": "flip"}, "model": {"architecture": "two_channel"},
      "loss": {"name": "logistic"}}, "not for model.architecture: two_channel"),
    ({"export": {"symmetries": "flip"}, "loss": {"name": "logistic"}},
     "loss.name: logistic learns a head"),
])
def test_config_rules(tmp_path, sets, message):
    path = write_config(tmp_path / "c.yaml", tmp_path, **sets)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(path)


def test_the_config_names_the_symmetries_of_model_json():
    """The config (which imports nothing of the formats) spells the names and which of them
    turn by a quarter again: they must stay those of SYMMETRIES."""
    from typing import get_args, get_type_hints

    from siamese.config.schema import ExportConfig
    from siamese.data.turns import needs_square

    names = get_args(get_type_hints(ExportConfig)["symmetries"])
    assert names == tuple(SYMMETRIES)
    square = [n for n in names if n != "none"
              and "needs square" in _rule_message(n, [16, 20])]
    assert square == [n for n in SYMMETRIES if needs_square(n)] == ["rotations", "dihedral"]


def _rule_message(name: str, size) -> str:
    from siamese.config import Config
    from siamese.config.rules import check_symmetries

    cfg = Config()
    cfg.export.symmetries, cfg.data.image_size = name, size
    try:
        check_symmetries(cfg)
    except UserError as e:
        return str(e)
    return ""


def test_flip_is_allowed_on_non_square_images(tmp_path):
    path = write_config(tmp_path / "c.yaml", tmp_path, export={"symmetries": "flip"},
                        data={"image_size": [16, 20]})
    assert load_config(path).export.symmetries == "flip"


@pytest.fixture(scope="module")
def dihedral_export(trained_run, tmp_path_factory):
    """The shared tiny run exported with --symmetries dihedral into its own folder."""
    run_dir, root, _ = trained_run
    out = tmp_path_factory.mktemp("sym") / "export-dihedral"
    assert export_main([str(run_dir), "--symmetries", "dihedral", "--out", str(out)]) == 0
    return run_dir, root, out



@pytest.mark.slow
def test_symbol_equals_eval_symmetries_over_the_plain_export(dihedral_export):
    run_dir, root, out = dihedral_export
    meta, plain_meta = read_meta(out), read_meta(run_dir / "export")
    pre = meta["preprocess"]
    images = pair_images(run_dir, root)
    plain = load_branch(run_dir / "export")

    def embed(x):
        return plain(mx.nd.array(to_tensor(x, pre["mean"], pre["std"]))).asnumpy()

    got = load_branch(out)(mx.nd.array(to_tensor(images, pre["mean"], pre["std"]))).asnumpy()
    assert meta["symmetries"] == "dihedral" and plain_meta["symmetries"] == "none"
    assert got.shape == (len(images), meta["embedding_size"])
    assert meta["embedding_size"] == 8 * plain_meta["embedding_size"]
    np.testing.assert_allclose(got, symmetric(embed, images, 0, "dihedral"), atol=1e-5)
    np.testing.assert_allclose(got[:, :plain_meta["embedding_size"]] * np.sqrt(8),
                               embed(images), atol=1e-5)  # the first part: the image itself
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_the_threshold_is_chosen_again_on_validation_pairs(dihedral_export):
    run_dir, root, out = dihedral_export
    meta, plain = read_meta(out), read_meta(run_dir / "export")
    comp, _ = open_comparator(run_dir / "export", 16)
    val = read_pair_file(run_dir / "pairs" / "val.csv", root)
    scores, _, _ = pair_list_scores(comp, val, root, (16, 16), 1, 0, symmetries="dihedral")
    rule = plain["score"]["threshold_rule"]
    chosen = with_threshold(plain["score"], scores, val.labels, rule)["threshold"]
    assert meta["score"]["threshold"] == pytest.approx(chosen, abs=1e-5)
    assert meta["score"]["threshold"] != plain["score"]["threshold"]


@pytest.mark.slow
def test_eval_of_the_export_equals_eval_symmetries_of_the_plain_one(dihedral_export,
                                                                     tmp_path, capsys):
    run_dir, root, out = dihedral_export
    pairs = random_labelled_pairs(root, tmp_path / "pairs.csv")
    reports = {}
    for name, target, more in (("export", out, []),
                               ("eval", run_dir / "export", ["--symmetries", "dihedral"]),
                               ("plain", run_dir / "export", [])):
        path = tmp_path / f"{name}.json"
        assert eval_cli.main([str(target), "--pairs", str(pairs), "--root", str(root),
                              "--out", str(path), "--n-way", "3", "--episodes", "50", *more]) == 0
        reports[name] = json.loads(path.read_text())
    a, b, c = reports["export"], reports["eval"], reports["plain"]
    assert 0.1 < a["auc"] < 0.9 and a["auc"] == pytest.approx(b["auc"], abs=1e-9)
    assert a["best_threshold"] == pytest.approx(b["best_threshold"], abs=1e-5)
    assert abs(c["best_threshold"] - a["best_threshold"]) > 1e-4  # the test can fail
    assert a["n_way"]["3"]["accuracy"] == b["n_way"]["3"]["accuracy"]
    assert a["symmetries"] == b["symmetries"] == "dihedral" and c["symmetries"] == "none"
    capsys.readouterr()
    assert eval_cli.main([str(out), "--symmetries", "flip", "--pairs", str(pairs), "--root",
                          str(root)]) == 2
    assert "already embeds the symmetries dihedral" in capsys.readouterr().err


@pytest.mark.slow
def test_a_bad_value_in_model_json_is_refused(dihedral_export, tmp_path):
    _, _, out = dihedral_export
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    meta = json.loads((bad / "model.json").read_text())
    for value in ("spin", 8, None, ["dihedral"]):
        (bad / "model.json").write_text(json.dumps(dict(meta, symmetries=value)))
        with pytest.raises(UserError, match="inconsistent export metadata"):
            read_meta(bad)


@pytest.mark.slow
def test_training_with_the_key_exports_and_scores_under_it(trained_run, tmp_path):
    """export.symmetries in the config: metrics.json's test figures are those of the export
    (eval.py on the run's test pairs), computed under the symmetries."""
    _, root, _ = trained_run
    cfg = write_config(tmp_path / "c.yaml", root, export={"symmetries": "rotations"},
                       train={"epochs": 1})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "run")]) == 0
    run = tmp_path / "run"
    meta = read_meta(run / "export")
    assert meta["symmetries"] == "rotations" and meta["embedding_size"] == 4 * 8
    assert eval_cli.main([str(run), "--out", str(tmp_path / "e.json")]) == 0
    report = json.loads((tmp_path / "e.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert report["auc"] == pytest.approx(metrics["test"]["auc"], abs=1e-9)
    assert meta["score"]["threshold"] == pytest.approx(metrics["val"]["threshold"], abs=1e-6)
    # re-exporting without the flag keeps the run's symmetries, in the run's export folder
    assert export_main([str(run)]) == 0
    assert read_meta(run / "export")["symmetries"] == "rotations"


@pytest.mark.slow
def test_onnx_of_the_symmetric_branch_agrees(trained_run, tmp_path):
    extra("onnxruntime")
    from siamese.export.onnx import onnx_run

    run_dir, root, _ = trained_run
    out = tmp_path / "onnx"
    assert export_main([str(run_dir), "--symmetries", "dihedral", "--onnx", "--out",
                        str(out)]) == 0
    meta = read_meta(out)
    x = to_tensor(pair_images(run_dir, root)[:3], meta["preprocess"]["mean"],
                  meta["preprocess"]["std"])
    onx = onnx_run(out / "branch.onnx", {"data": x})
    sym = load_branch(out)(mx.nd.array(x)).asnumpy()
    assert onx.shape == sym.shape == (3, meta["embedding_size"])
    np.testing.assert_allclose(onx, sym, atol=1e-5)


@pytest.mark.slow
def test_only_a_siamese_branch_takes_symmetries(trained_run, tmp_path, capsys):
    _, root, _ = trained_run
    cfg = write_config(tmp_path / "c.yaml", root, model={"architecture": "two_channel",
                                                         "embedding_size": 8},
                       loss={"name": "logistic"}, train={"epochs": 1})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert export_main([str(tmp_path / "run"), "--symmetries", "flip"]) == 2
    assert "not for model.architecture: two_channel" in capsys.readouterr().err
    assert eval_cli.main([str(tmp_path / "run"), "--symmetries", "flip"]) == 2
    assert "scores pairs" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("flag", [["--optimize", "fused"], ["--quantize", "int8"]])
def test_the_serving_exports_turn_too(dihedral_export, flag):
    run_dir, root, out = dihedral_export
    kind = flag[1]
    assert export_main([str(run_dir), "--symmetries", "dihedral", *flag]) == 0
    served = run_dir / f"export-{kind}-dihedral"  # the default folder
    meta = read_meta(served)
    assert meta["symmetries"] == "dihedral" and meta["optimized"]["kind"] == kind
    images = pair_images(run_dir, root)
    x = mx.nd.array(to_tensor(images, meta["preprocess"]["mean"], meta["preprocess"]["std"]))
    got, want = load_branch(served)(x).asnumpy(), load_branch(out)(x).asnumpy()
    assert got.shape == want.shape == (len(images), meta["embedding_size"])
    assert (got * want).sum(1).min() >= (0.99999 if kind == "fused" else 0.95)  # unit vectors
    assert meta["score"]["threshold"] == read_meta(out)["score"]["threshold"]
    shutil.rmtree(served)
