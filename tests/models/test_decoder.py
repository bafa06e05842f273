"""Tied weights: a decoder that uses the branch's own weights transposed, checked by hand;
few-label training, autoencoder pretraining and the initializer as a choice, for real."""

from __future__ import annotations

import json

import mxnet as mx
import numpy as np
import pytest
from conftest import make_folder, write_config
from mxnet.gluon import nn

import train
from siamese.config import from_dict
from siamese.errors import UserError
from siamese.formats import checkpoint
from siamese.formats.bundle import read_meta
from siamese.models.branches import MLP, ConvNet
from siamese.models.decoder import AutoEncoder, build_decoder, decoder_uses, transposed_conv3x3
from siamese.models.init import make_init
from siamese.models.sharing import sharing_map
from siamese.train.engine import unique_params


def tiny_mlp_autoencoder(kind="tied"):
    """MLP branch 6 inputs -> hidden 4 -> E 3 on images (1, 2, 3), fixed weights."""
    mx.random.seed(0)
    branch = MLP(3, normalize=False, hidden=4)
    branch.initialize(mx.init.Uniform(0.5))
    branch(mx.nd.zeros((1, 1, 2, 3)))
    decoder = build_decoder(branch, kind, (1, 2, 3))
    for p in decoder.collect_params().values():
        if p._data is None:
            p.initialize(default_init=mx.init.Uniform(0.5))
    return branch, decoder, AutoEncoder(branch, decoder)


X = mx.nd.array(np.random.default_rng(0).normal(size=(5, 1, 2, 3)))


def by_hand(w_hidden_enc, w_embed_enc, w_hidden_dec, w_embed_dec, branch, decoder):
    """The tied autoencoder's loss written out, each use of a weight its own array."""
    x = X.reshape((5, 6))
    h = mx.nd.relu(mx.nd.dot(x, w_hidden_enc, transpose_b=True) + branch.hidden.bias.data())
    z = mx.nd.dot(h, w_embed_enc, transpose_b=True) + branch.embed.bias.data()
    d = mx.nd.relu(mx.nd.dot(z, w_embed_dec) + decoder.b0.data())  # z @ W_embed: transposed use
    out = mx.nd.dot(d, w_hidden_dec) + decoder.b1.data()
    return mx.nd.mean(mx.nd.square(out - x), axis=1).sum()


def test_tied_gradient_is_the_sum_of_its_two_uses():
    branch, decoder, ae = tiny_mlp_autoencoder()
    assert decoder.w0 is branch.embed.weight and decoder.w1 is branch.hidden.weight
    with mx.autograd.record():
        loss = ae(X).reshape((5, 6))
        loss = mx.nd.mean(mx.nd.square(loss - X.reshape((5, 6))), axis=1).sum()
    loss.backward()
    uses = [p.data().copy() for p in (branch.hidden.weight, branch.embed.weight,
                                      branch.hidden.weight, branch.embed.weight)]
    for u in uses:
        u.attach_grad()
    with mx.autograd.record():
        again = by_hand(*uses, branch, decoder)
    again.backward()
    assert again.asscalar() == pytest.approx(loss.asscalar(), rel=1e-6)
    for param, enc, dec in ((branch.hidden.weight, uses[0], uses[2]),
                            (branch.embed.weight, uses[1], uses[3])):
        assert np.abs(enc.grad.asnumpy()).sum() > 0 and np.abs(dec.grad.asnumpy()).sum() > 0
        np.testing.assert_allclose(param.grad().asnumpy(),
                                   enc.grad.asnumpy() + dec.grad.asnumpy(), rtol=1e-5,
                                   atol=1e-7)


def _step(ae, branch, decoder, lr=0.1):
    params = unique_params(branch, decoder)
    trainer = mx.gluon.Trainer(params, "sgd", {"learning_rate": lr})
    with mx.autograd.record():
        loss = mx.nd.mean(mx.nd.square(ae(X) - X), axis=(1, 2, 3))
    loss.backward()
    grads = {id(p): p.grad().asnumpy().copy() for p in params}
    before = {id(p): p.data().asnumpy().copy() for p in params}
    trainer.step(1)
    return grads, before


def test_one_step_moves_encoder_and_decoder_views_identically():
    branch, decoder, ae = tiny_mlp_autoencoder()
    grads, before = _step(ae, branch, decoder)
    w = branch.embed.weight
    expected = before[id(w)] - 0.1 * grads[id(w)]
    np.testing.assert_allclose(w.data().asnumpy(), expected, rtol=1e-6)
    assert decoder.w0 is w  # one object: the decoder's view is the same array
    np.testing.assert_array_equal(decoder.w0.data().asnumpy(), branch.embed.weight.data().asnumpy())


def test_a_copied_decoder_weight_is_untied_and_drifts():
    branch, decoder, ae = tiny_mlp_autoencoder("untied")
    decoder.w0.set_data(branch.embed.weight.data().copy())  # the common mistake: a copy
    assert decoder_uses(branch, decoder) == {}
    uses = {"left": branch._collect_params_with_prefix(),
            "right": branch._collect_params_with_prefix(),
            "decoder": decoder._collect_params_with_prefix()}
    rows = {r["name"]: r for r in sharing_map(uses)["rows"]}
    assert rows[decoder.w0.name]["status"] == "decoder only"
    _step(ae, branch, decoder)
    assert not np.allclose(decoder.w0.data().asnumpy(), branch.embed.weight.data().asnumpy())


def test_tied_decoder_is_one_parameter_used_twice_in_the_sharing_map():
    branch, decoder, _ = tiny_mlp_autoencoder()
    assert decoder_uses(branch, decoder) == {"w0": ("embed.weight", "transposed"),
                                             "w1": ("hidden.weight", "transposed")}
    p = branch._collect_params_with_prefix()
    report = sharing_map({"left": p, "right": p,
                          "decoder": decoder._collect_params_with_prefix()},
                         {"decoder": decoder.notes})
    row = next(r for r in report["rows"] if r["name"] == branch.embed.weight.name)
    assert row["used_by"]["decoder"] == "w0 (transposed)" and row["status"] == "shared"
    # Counted once: 4 branch parameters + 2 decoder biases.
    assert report["totals"]["parameters"] == 6


def weight_elements(*blocks):
    seen = {id(p): p for b in blocks for p in b.collect_params().values()
            if p.name.endswith("weight") or p.name.split("_")[-1].startswith("w")}
    return sum(int(np.prod(p.shape)) for p in seen.values())


@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 28, 28), (3, 30, 30)])
def test_tied_conv_decoder_reconstructs_the_input_shape(shape):
    branch = ConvNet(64)
    branch.initialize(mx.init.Xavier())
    x = mx.nd.random.normal(shape=(2,) + shape)
    branch(x)
    decoder = build_decoder(branch, "tied", shape)
    for p in decoder.collect_params().values():
        if p._data is None:
            p.initialize()
    ae = AutoEncoder(branch, decoder)
    out = ae(x)
    assert out.shape == (2,) + shape
    ae.hybridize()
    np.testing.assert_allclose(ae(x).asnumpy(), out.asnumpy(), rtol=1e-4, atol=1e-5)
    # untied has exactly twice the weight elements of tied
    tied = weight_elements(branch, decoder)
    untied_decoder = build_decoder(branch, "untied", shape)
    assert weight_elements(branch, untied_decoder) == 2 * tied
    assert tied == 64 * 128 + 128 * 64 * 9 + 64 * 32 * 9 + 32 * shape[0] * 9


@pytest.mark.parametrize("channels", [1, 3, 4, 8])
def test_transposed_conv_equals_deconvolution(channels):
    rng = np.random.default_rng(0)
    shapes = ((2, 6, 5, 7), (6, channels, 3, 3), (channels,))
    x, w, b = (mx.nd.array(rng.normal(size=s)) for s in shapes)
    ref = mx.nd.Deconvolution(x, w, b, kernel=(3, 3), pad=(1, 1), num_filter=channels,
                              no_bias=False)
    got = transposed_conv3x3(mx.nd, x, w, b, channels)
    np.testing.assert_allclose(got.asnumpy(), ref.asnumpy(), rtol=1e-5, atol=1e-5)
    grads = []
    for fn in (lambda: mx.nd.Deconvolution(x, w, b, kernel=(3, 3), pad=(1, 1),
                                           num_filter=channels, no_bias=False),
               lambda: transposed_conv3x3(mx.nd, x, w, b, channels)):
        w.attach_grad()
        with mx.autograd.record():
            (fn() * got).sum().backward()
        grads.append(w.grad.asnumpy().copy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-4, atol=1e-4)


def test_unmirrorable_branch_names_model_decoder():
    dense = nn.Dense(4)
    dense.initialize()
    dense(mx.nd.zeros((1, 3)))
    with pytest.raises(UserError, match="model.decoder: cannot mirror a Dense"):
        build_decoder(dense, "tied", (1, 1, 3))


@pytest.mark.parametrize("raw, message", [
    ({"model": {"init": "glorot"}}, "model.init: unknown initializer 'glorot'"),
    ({"model": {"init": "normal(scale=1)"}}, "model.init: normal takes sigma"),
    ({"loss": {"name": "none"}}, "loss.name: none trains by reconstruction only"),
    ({"model": {"decoder": "tied", "architecture": "two_channel"}, "loss": {"name": "logistic"}},
     "model.decoder: needs model.architecture: siamese"),
    ({"loss": {"reconstruction_weight": 0}}, "loss.reconstruction_weight"),
])
def test_config_rules(raw, message):
    with pytest.raises(UserError, match=message):
        from_dict(raw)


def test_pytorch_init_is_uniform_in_one_over_sqrt_fan_in():
    mx.random.seed(0)
    dense = nn.Dense(500, in_units=400)
    dense.initialize(make_init("pytorch"))
    w = dense.weight.data().asnumpy()
    bound = 1 / np.sqrt(400)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert w.std() == pytest.approx(bound / np.sqrt(3), rel=0.02)  # uniform: bound / sqrt(3)
    gluon = nn.Dense(500, in_units=400)
    gluon.initialize(make_init("gluon"))
    assert np.abs(gluon.weight.data().asnumpy()).max() == pytest.approx(0.07, rel=0.01)
    with pytest.raises(UserError, match="model.init"):
        make_init("xavier(rnd_type=foo)")


# ------------------------------------------------------------------------- real short runs


@pytest.mark.slow
def test_few_labels_with_a_tied_decoder_then_export_holds_the_branch_only(tmp_path):
    root = make_folder(tmp_path / "images", classes=4, per_class=10)
    cfg = write_config(tmp_path / "c.yaml", root, model={"decoder": "tied"},
                       data={"labeled_per_class": 2}, loss={"reconstruction_weight": 0.5})
    run = tmp_path / "run"
    assert train.main([str(cfg), "--run-dir", str(run)]) == 0
    rows = (run / "pairs" / "split.csv").read_text().splitlines()[1:]
    train_rows = [r.split(",") for r in rows if r.split(",")[2] == "train"]
    assert sum(int(r[3]) for r in train_rows) == 4 * 2  # 2 labelled per class
    assert len(train_rows) == 4 * 6  # every training image still listed (and reconstructed)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    for row in log:
        assert row["train_loss"] == pytest.approx(row["train_similarity"]
                                                  + row["train_reconstruction"], rel=1e-6)
        assert row["val_reconstruction"] > 0
    text = (run / "sharing.txt").read_text()
    assert "(transposed)" in text
    # The export: the branch alone, as many parameters as the branch has.
    meta = read_meta(run / "export")
    saved = mx.nd.load(str(run / "export" / "branch-0000.params"))
    branch = ConvNet(8)
    branch.initialize()
    branch(mx.nd.zeros((1, 1, 16, 16)))
    assert len(saved) == len(list(branch.collect_params().values()))
    assert not any("decoder" in k for k in saved)
    assert meta["kind"] == "branch"
    ckpt = checkpoint.read(run / "checkpoints" / "best.ckpt")[1]
    assert any(k.startswith("decoder.") for k in ckpt)  # resumable with its decoder


@pytest.mark.slow
def test_autoencoder_run_starts_a_similarity_run(tmp_path):
    root = make_folder(tmp_path / "images", classes=4, per_class=10)
    ae_cfg = write_config(tmp_path / "ae.yaml", root, model={"decoder": "tied"},
                          loss={"name": "none"})
    assert train.main([str(ae_cfg), "--run-dir", str(tmp_path / "ae")]) == 0
    log = [json.loads(line) for line in (tmp_path / "ae" / "log.jsonl").read_text().splitlines()]
    assert all(r["train_similarity"] == 0 for r in log)
    best = json.loads((tmp_path / "ae" / "metrics.json").read_text())["best_epoch"]
    assert best == 1 + int(np.argmin([r["val_reconstruction"] for r in log]))
    # The same key as local pretrained weights: model.pretrained = the run directory.
    from siamese.config import load_config
    from siamese.train.engine import build_blocks

    cfg = write_config(tmp_path / "sim.yaml", root, model={"pretrained": str(tmp_path / "ae")})
    net, _, _ = build_blocks(load_config(cfg), [mx.cpu()])
    saved = checkpoint.read(tmp_path / "ae" / "checkpoints" / "best.ckpt")[1]
    for name, p in net.branch._collect_params_with_prefix().items():
        np.testing.assert_array_equal(p.data().asnumpy(), saved[f"model.branch.{name}"])
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "sim")]) == 0


@pytest.mark.slow
def test_resume_with_decoder_and_pk_batches_equals_an_uninterrupted_run(tmp_path):
    root = make_folder(tmp_path / "images", classes=4, per_class=10)
    sections = dict(model={"decoder": "untied"}, loss={"name": "triplet", "mining": "hard"},
                    data={"sampler": "pk", "classes_per_batch": 3, "images_per_class": 3,
                          "labeled_per_class": 4, "augment_shift": 1},
                    train={"epochs": 2, "schedule": "constant", "pairs_per_epoch": 36})
    cfg = write_config(tmp_path / "c.yaml", root, **sections)
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "whole")]) == 0
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "cut"), "--set",
                       "train.epochs=1"]) == 0
    assert train.main(["--resume", str(tmp_path / "cut"), "--set", "train.epochs=2"]) == 0
    whole, cut = (json.loads((tmp_path / r / "metrics.json").read_text())
                  for r in ("whole", "cut"))
    assert cut["test"]["threshold"] == pytest.approx(whole["test"]["threshold"], abs=1e-6)
    assert cut["test"]["auc"] == pytest.approx(whole["test"]["auc"], abs=1e-9)
    logs = [[json.loads(line) for line in (tmp_path / r / "log.jsonl").read_text().splitlines()]
            for r in ("whole", "cut")]
    for a, b in zip(*logs):
        assert a["train_reconstruction"] == pytest.approx(b["train_reconstruction"], rel=1e-5)


@pytest.mark.slow
def test_autoencoder_on_a_flat_folder_of_unlabelled_images(tmp_path, capsys):
    from PIL import Image

    flat = tmp_path / "flat"
    flat.mkdir()
    rng = np.random.default_rng(0)
    for k in range(20):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(flat / f"{k}.png")
    cfg = write_config(tmp_path / "ae.yaml", flat, model={"decoder": "tied"},
                       loss={"name": "none"})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "ae")]) == 0
    m = json.loads((tmp_path / "ae" / "metrics.json").read_text())
    assert m["exported"] is False and m["val"]["reconstruction"] > 0
    assert not (tmp_path / "ae" / "export").exists()
    assert "model.pretrained=" in capsys.readouterr().out
    import eval as eval_cli
    from siamese.commands.export import main as export_main

    for cli in (eval_cli.main, export_main):
        assert cli([str(tmp_path / "ae")]) == 2
        assert "reconstruction-only run on unlabelled images" in capsys.readouterr().err
    # A flat folder is only for reconstruction: a similarity run needs classes.
    sim = write_config(tmp_path / "sim.yaml", flat)
    assert train.main([str(sim), "--run-dir", str(tmp_path / "sim")]) == 2
