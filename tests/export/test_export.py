"""Export: CLI round trip (symbol and ONNX), thresholds, atomicity, damaged exports, predict."""

from __future__ import annotations

import json
import shutil
import sys

import mxnet as mx
import numpy as np
import pytest
from conftest import extra

from siamese.commands import predict as predict_cli
from siamese.commands.export import main as export_main
from siamese.data.images import load_images
from siamese.errors import ExportMismatch
from siamese.export.writer import export_branch
from siamese.formats.bundle import META, PARAMS, read_meta
from siamese.formats.preprocess import to_tensor
from siamese.scoring.bundles import load_branch
from siamese.train.rebuild import load_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    """The shared tiny run exported again into its own folder (symbol + params; no ONNX, so
    the cases that do not need onnxruntime run without it)."""
    run_dir, root, _ = trained_run
    out = tmp_path_factory.mktemp("exp") / "export"
    assert export_main([str(run_dir), "--out", str(out)]) == 0
    return run_dir, root, out


@pytest.fixture(scope="module")
def exported_onnx(trained_run, tmp_path_factory):
    """The same, with --onnx (needs the onnx extra)."""
    extra("onnxruntime")
    run_dir, root, _ = trained_run
    out = tmp_path_factory.mktemp("exp_onnx") / "export"
    assert export_main([str(run_dir), "--onnx", "--out", str(out)]) == 0
    return run_dir, root, out


def test_symbol_and_onnx_round_trip_on_another_batch_size(exported_onnx):
    from siamese.export.onnx import onnx_run

    run_dir, root, out = exported_onnx
    cfg, net, _ = load_run(run_dir, "best")
    files = sorted(root.glob("class*/*.png"))[:3]  # batch 3: not the 16 used when exporting
    x = to_tensor(load_images(files, (16, 16), 1), cfg.data.mean, cfg.data.std)
    expected = net.branch(mx.nd.array(x)).asnumpy()
    meta = read_meta(out)
    assert meta["files"]["onnx"] == "branch.onnx"
    assert meta["verified"]["max_abs_diff"]["onnx"] <= meta["verified"]["tolerance"]
    sym = load_branch(out)(mx.nd.array(x)).asnumpy()
    onx = onnx_run(out / "branch.onnx", {"data": x})
    assert sym.shape == onx.shape == (3, 8)
    np.testing.assert_allclose(sym, expected, atol=1e-5)
    np.testing.assert_allclose(onx, expected, atol=1e-5)


def test_cli_export_threshold_is_the_validation_one(exported):
    run_dir, _, out = exported
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert read_meta(out)["score"]["threshold"] == metrics["val"]["threshold"]
    assert read_meta(run_dir / "export")["score"] == read_meta(out)["score"]


def test_failed_verification_leaves_previous_export_intact(exported, tmp_path):
    run_dir, root, out = exported
    target = tmp_path / "export"
    shutil.copytree(out, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    cfg, net, _ = load_run(run_dir, "last")
    meta = read_meta(target)
    images = load_images(sorted(root.glob("class*/*.png"))[:4], (16, 16), 1)
    with pytest.raises(ExportMismatch, match="export removed"):
        export_branch(net.branch, target, meta, images, mx.cpu(), tolerance=-1.0)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temporary left


def test_onnx_without_the_extra_names_it(trained_run, monkeypatch, capsys, tmp_path):
    run_dir, _, _ = trained_run
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    assert export_main([str(run_dir), "--onnx", "--out", str(tmp_path / "e")]) == 2
    assert "pip install -e '.[onnx]'" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_export_errors_exit_2(tmp_path, capsys):
    assert export_main([str(tmp_path)]) == 2
    assert "best.ckpt: no such checkpoint" in capsys.readouterr().err


def _independent_distance(export_dir, a, b):
    """The distance computed by hand from model.json, outside siamese.predict."""
    meta = json.loads((export_dir / META).read_text())
    pre = meta["preprocess"]
    x = to_tensor(load_images([a, b], pre["resize"], 1), pre["mean"], pre["std"])
    e = load_branch(export_dir)(mx.nd.array(x)).asnumpy()
    return float(np.sqrt(((e[0] - e[1]) ** 2).sum())), meta["score"]["threshold"]


def test_predict_decisions_follow_the_threshold(exported, capsys):
    _, root, out = exported
    same = (root / "class0" / "000.png", root / "class0" / "005.png")
    diff = (root / "class0" / "000.png", root / "class3" / "002.png")
    for (a, b), expect_same in ((same, True), (diff, False)):
        assert predict_cli.main([str(out), str(a), str(b), "--json"]) == 0
        r = json.loads(capsys.readouterr().out)
        d, t = _independent_distance(out, a, b)
        assert r["score"] == pytest.approx(d, abs=1e-5)
        assert r["same"] == (d <= t) == expect_same


def test_predict_accepts_colour_and_other_sizes(exported, tmp_path, capsys):
    from PIL import Image

    _, root, out = exported
    big = tmp_path / "big.jpg"
    Image.open(root / "class1" / "000.png").convert("RGB").resize((50, 40)).save(big)
    assert predict_cli.main([str(out), str(big), str(root / "class1" / "001.png")]) == 0
    assert "euclidean distance" in capsys.readouterr().out


def test_predict_embed_writes_names_and_embeddings(exported, tmp_path):
    _, root, out = exported
    npz = tmp_path / "e" / "emb.npz"
    assert predict_cli.main([str(out), "--embed", str(root), "--out", str(npz),
                             "--batch-size", "7"]) == 0
    z = np.load(npz)
    assert len(z["names"]) == z["embeddings"].shape[0] == len(list(root.glob("*/*.png")))
    assert z["names"][0] == "class0/000.png"
    norms = np.linalg.norm(z["embeddings"], axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)  # normalised inside the branch


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / PARAMS).unlink(), "branch-0000.params: missing"),
    (lambda d: (d / META).write_text("{not json"), "cannot read export metadata"),
    (lambda d: (d / PARAMS).write_bytes((d / PARAMS).read_bytes()[:200]),
     "not a readable MXNet parameter file"),
    (lambda d: (d / META).write_text(json.dumps({"input": {}})), "inconsistent export"),
])
def test_damaged_export_is_refused(exported, tmp_path, capsys, damage, message):
    _, root, out = exported
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    damage(broken)
    a = str(root / "class0" / "000.png")
    assert predict_cli.main([str(broken), a, a]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_unreadable_image_is_refused(exported, tmp_path, capsys):
    _, root, out = exported
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert predict_cli.main([str(out), str(bad), str(root / "class0" / "000.png")]) == 2
    assert "bad.png: cannot read image" in capsys.readouterr().err


def test_checkpoint_whose_config_builds_another_model_is_refused(trained_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run[0], run_dir)
    path = run_dir / "checkpoints" / "best.ckpt"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta["config"]["model"]["embedding_size"] = 4  # the weights were trained with 8
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    assert export_main([str(run_dir), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "best.ckpt" in err and "shape" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "e").exists()


def test_logistic_head_export_predicts_with_its_probability(tmp_path, capsys):
    from conftest import make_folder, write_config

    import train

    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root, loss={"name": "logistic"},
                       train={"lr": 0.01, "epochs": 3})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "r")]) == 0
    export = tmp_path / "r" / "export"
    meta = read_meta(export)
    assert meta["score"]["name"] == "logistic" and len(meta["score"]["weights"]) == 8
    a, b = root / "class2" / "000.png", root / "class2" / "001.png"
    capsys.readouterr()
    assert predict_cli.main([str(export), str(a), str(b), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert 0.0 < r["score"] < 1.0 and r["score_kind"] == "probability same"
    assert r["same"] == (r["score"] >= meta["score"]["threshold"])


def test_training_can_export_onnx_at_the_end(tmp_path):
    extra("onnxruntime")
    from conftest import make_folder, write_config

    import train

    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root, export={"onnx": True}, train={"epochs": 1})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "r")]) == 0
    meta = read_meta(tmp_path / "r" / "export")
    assert meta["files"]["onnx"] == "branch.onnx"
    assert meta["verified"]["max_abs_diff"]["onnx"] <= meta["verified"]["tolerance"]
