"""Scale: every branch in the registry (GluonCV too), several devices, GPU errors, distributed."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest
from conftest import ROOT, extra, make_folder, write_config
from mxnet import autograd

import train
from siamese.config import TrainConfig
from siamese.errors import UserError
from siamese.models.architectures import SiameseNet
from siamese.models.branches import BRANCHES, get_branch
from siamese.models.pretrained import load_pretrained
from siamese.models.zoo import freeze
from siamese.scoring.bundles import load_branch
from siamese.train.step import TrainStep
from siamese.train.trainer import build_trainer

ZOO = ["gluoncv:resnet18_v1b", "gluoncv:mobilenetv2_0.25"]
ALL = sorted(BRANCHES) + ZOO


def built(name: str, channels: int = 1, size: int = 32, ctx=None):
    ctx = ctx or [mx.cpu()]
    mx.random.seed(0)
    net = SiameseNet(get_branch(name, 8), "concat")
    net.initialize(mx.init.Xavier(), ctx=ctx)
    x = mx.nd.zeros((2, channels, size, size), ctx=ctx[0])
    net(x, x)
    return net


@pytest.mark.parametrize("name", ALL)
def test_every_branch_builds_hybridizes_trains_and_exports(name, tmp_path):
    if name.startswith("gluoncv:"):
        extra("gluoncv")
    net = built(name)
    rng = np.random.default_rng(0)
    x1, x2 = (mx.nd.array(rng.normal(size=(4, 1, 32, 32))) for _ in range(2))
    imperative = net.branch(x1).asnumpy()
    net.hybridize(static_alloc=True, static_shape=True)
    hybrid = net.branch(x1).asnumpy()
    np.testing.assert_allclose(hybrid, imperative, rtol=1e-4, atol=1e-5)
    # One training step changes the weights and keeps them finite.
    from siamese.losses.pair import ContrastiveLoss

    loss = ContrastiveLoss()
    params = list(net.collect_params().values())
    trainer = build_trainer(params, TrainConfig(lr=0.01), 1)
    before = params[0].data().asnumpy().copy()
    total = TrainStep(net, loss, trainer, [mx.cpu()], 4)((x1, x2, mx.nd.array([1, 0, 1, 0])))
    assert np.isfinite(total)
    assert not np.allclose(params[0].data().asnumpy(), before)
    with autograd.predict_mode():
        expected = net.branch(x1).asnumpy()
    net.branch.export(str(tmp_path / "branch"))
    np.testing.assert_allclose(load_branch(tmp_path)(x1).asnumpy(), expected, rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parametrize("name", ZOO)
def test_zoo_branch_takes_grayscale_and_colour(name):
    extra("gluoncv")
    gray = built(name, channels=1)
    colour = built(name, channels=3)
    g = mx.nd.random.uniform(shape=(2, 1, 32, 32))
    # Grayscale equals the same picture given as three equal channels.
    copy_params = colour._collect_params_with_prefix()
    for k, p in gray._collect_params_with_prefix().items():
        copy_params[k].set_data(p.data())
    np.testing.assert_allclose(gray.branch(g).asnumpy(),
                               colour.branch(mx.nd.concat(g, g, g, dim=1)).asnumpy(), atol=1e-5)


def test_unknown_zoo_name_and_pretrained_errors(tmp_path):
    extra("gluoncv")
    with pytest.raises(UserError, match="not in the GluonCV model zoo"):
        get_branch("gluoncv:resnet9000", 8)
    net = built("gluoncv:resnet18_v1b")
    with pytest.raises(UserError, match="no such file"):
        load_pretrained(net.branch, str(tmp_path / "missing.params"))
    (tmp_path / "junk.params").write_bytes(b"junk")
    with pytest.raises(UserError, match="not an MXNet .params file"):
        load_pretrained(net.branch, str(tmp_path / "junk.params"))


def test_pretrained_from_a_local_zoo_file_skips_the_classifier(tmp_path):
    extra("gluoncv")
    from gluoncv.model_zoo import get_model

    zoo = get_model("resnet18_v1b", pretrained=False)  # 1000 classes: another classifier
    zoo.initialize(mx.init.Xavier())
    zoo(mx.nd.zeros((1, 3, 32, 32)))
    zoo.save_parameters(str(tmp_path / "resnet18.params"))
    net = built("gluoncv:resnet18_v1b")
    load_pretrained(net.branch, str(tmp_path / "resnet18.params"))
    ours = net.branch._collect_params_with_prefix()
    np.testing.assert_array_equal(ours["net.conv1.weight"].data().asnumpy(),
                                  zoo.conv1.weight.data().asnumpy())
    assert ours["net.fc.weight"].shape == (8, 512)  # the embedding layer keeps its own init


def test_pretrained_true_explains_no_download(tmp_path, capsys):
    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root, model={"pretrained": True})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "r")]) == 2
    assert "never downloads at run time" in capsys.readouterr().err


def test_freeze_stops_updates_and_keeps_frozen_batchnorm_in_inference_mode():
    net = built("convnet")
    frozen = freeze(net.branch, ["features.0.", "features.1."])  # first conv and its BN
    assert frozen == 5  # conv weight; BN gamma, beta, running mean, running var
    params = net.branch._collect_params_with_prefix()
    mean_before = params["features.1.running_mean"].data().asnumpy().copy()
    w_before = params["features.0.weight"].data().asnumpy().copy()
    net.hybridize()
    from siamese.losses.pair import ContrastiveLoss

    trainer = build_trainer(list(net.collect_params().values()), TrainConfig(lr=0.1), 1)
    x = mx.nd.random.uniform(shape=(4, 1, 32, 32))
    TrainStep(net, ContrastiveLoss(), trainer, [mx.cpu()], 4)((x, x[::-1], mx.nd.ones((4,))))
    np.testing.assert_array_equal(params["features.0.weight"].data().asnumpy(), w_before)
    np.testing.assert_array_equal(params["features.1.running_mean"].data().asnumpy(),
                                  mean_before)  # frozen BN did not update its statistics
    assert not np.allclose(params["embed.weight"].data().asnumpy(), 0)
    with pytest.raises(UserError, match="matches no parameter"):
        freeze(net.branch, ["nonexistent."])


def test_two_cpu_devices_equal_one_for_a_batchnorm_free_branch():
    from siamese.losses.pair import ContrastiveLoss

    rng = np.random.default_rng(1)
    batches = [[mx.nd.array(rng.normal(size=(8, 1, 16, 16))) for _ in range(2)]
               + [mx.nd.array(rng.integers(0, 2, 8))] for _ in range(3)]
    results = []
    for ctxs in ([mx.cpu(0)], [mx.cpu(0), mx.cpu(1)]):
        net = built("mlp", size=16, ctx=ctxs)
        net.hybridize(static_alloc=True, static_shape=True)
        trainer = build_trainer(list(net.collect_params().values()),
                                TrainConfig(lr=0.05, optimizer="sgd"), len(ctxs))
        for x1, x2, y in batches:  # batch size stays 8 pairs: 4 per device with two
            TrainStep(net, ContrastiveLoss(), trainer, ctxs, 8)((x1, x2, y))
        results.append({k: p.data(ctxs[-1]).asnumpy()
                        for k, p in net._collect_params_with_prefix().items()})
    for k in results[0]:
        np.testing.assert_allclose(results[1][k], results[0][k], rtol=1e-5, atol=1e-6)


def test_multi_device_run_trains_end_to_end(tmp_path):
    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root, device="cpu:0,1")
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "r")]) == 0
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["test"]["auc"] > 0.9


@pytest.mark.parametrize("device, message", [
    ("gpu", "asks for a GPU but MXNet sees none"),
    ("gpu:0,1", "asks for a GPU but MXNet sees none"),
    ("tpu", "expected auto, cpu, gpu"),
])
def test_gpu_requests_without_a_gpu_exit_2(tmp_path, capsys, device, message):
    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root, device=device)
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err
    if device.startswith("gpu"):
        assert "mxnet-cu" in err  # says how to install a CUDA build


def test_amp_on_cpu_is_refused(tmp_path, capsys):
    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root, train={"amp": True})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "r")]) == 2
    assert "train.amp: mixed precision needs GPUs" in capsys.readouterr().err


def test_dist_kvstore_without_launcher_is_explained(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DMLC_ROLE", raising=False)
    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root, train={"kvstore": "dist_sync"})
    assert train.main([str(cfg), "--run-dir", str(tmp_path / "r")]) == 2
    assert "python -m siamese.launch" in capsys.readouterr().err


def launch(tmp_path, *extra, workers=2, **sections):
    root = make_folder(tmp_path / "img")
    cfg = write_config(tmp_path / "c.yaml", root, **{
        "train": {"epochs": 2, "pairs_per_epoch": 64, "batch_size": 8}, **sections})
    cmd = [sys.executable, "-m", "siamese.launch", "--workers", str(workers), "--servers", "1",
           "--timeout", "90", "--log-dir", str(tmp_path / "logs"), "train.py", str(cfg),
           "--run-dir", str(tmp_path / "run"), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.slow
def test_distributed_run_two_workers_identical_parameters(tmp_path):
    proc = launch(tmp_path)
    _, err = proc.communicate(timeout=120)
    logs = {p.stem: p.read_text() for p in (tmp_path / "logs").glob("*.log")}
    assert proc.returncode == 0, (err, logs.get("worker-0", "")[-2000:])
    digests = [line.split()[-1] for name in ("worker-0", "worker-1")
               for line in logs[name].splitlines() if "final parameters sha256" in line]
    assert len(digests) == 2 and digests[0] == digests[1]
    run = tmp_path / "run"
    for name in ("config.yaml", "log.jsonl", "metrics.json", "checkpoints/best.ckpt",
                 "export/model.json", "pairs/test.csv"):
        assert (run / name).is_file(), name
    assert "kvstore: dist_sync" in (run / "config.yaml").read_text()


@pytest.mark.slow
def test_a_dying_worker_stops_the_launcher(tmp_path):
    proc = launch(tmp_path, "--set", "train.epochs=1000")
    pids = tmp_path / "logs" / "pids.json"
    end = time.time() + 60
    while not (tmp_path / "run" / "log.jsonl").exists():  # training is under way
        assert time.time() < end and proc.poll() is None
        time.sleep(0.2)
    import os
    import signal

    os.kill(json.loads(pids.read_text())["worker-1"], signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "worker-1 exited with" in err
    for pid in json.loads(pids.read_text()).values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.slow
def test_two_workers_equal_one_process_with_the_global_batch(tmp_path):
    """Without BatchNorm, 2 workers x 8 pairs per step train like one process with 16: the
    same pairs (worker r takes every second one from r), gradients summed over workers."""
    from siamese.formats import checkpoint

    sections = {"model": {"branch": "mlp", "embedding_size": 8},
                "data": {"augment_shift": 0, "image_size": 16, "val_pairs": 40,
                         "test_pairs": 40, "val_fraction": 0.25, "test_fraction": 0.25},
                "train": {"epochs": 2, "pairs_per_epoch": 64, "batch_size": 8,
                          "optimizer": "sgd", "lr": 0.05}}
    proc = launch(tmp_path / "dist", **sections)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    single = tmp_path / "single"
    root = tmp_path / "dist" / "img"
    sections["train"]["batch_size"] = 16
    cfg = write_config(tmp_path / "s.yaml", root, **sections)
    assert train.main([str(cfg), "--run-dir", str(single)]) == 0
    _, dist_params, _ = checkpoint.read(tmp_path / "dist" / "run" / "checkpoints" / "last.ckpt")
    _, one_params, _ = checkpoint.read(single / "checkpoints" / "last.ckpt")
    assert dist_params.keys() == one_params.keys()
    for k in one_params:
        np.testing.assert_allclose(dist_params[k], one_params[k], rtol=1e-4, atol=1e-6)


def test_gpus_mxnet_cannot_drive_are_refused_with_the_reason():
    from siamese.train.device import refuse_unsupported, unsupported

    caps = {0: (8, 6), 1: (9, 0), 2: (5, 0), 3: (3, 7)}
    assert unsupported([0, 1, 2, 3], caps) == {1: (9, 0), 3: (3, 7)}
    refuse_unsupported("gpu:0,2", [0, 2], caps)  # 8.6 and 5.0: fine
    refuse_unsupported("gpu:5", [5], caps)  # capability unknown: not refused on that ground
    with pytest.raises(UserError, match=r"gpu:1 has compute capability 9\.0; MXNet 1\.9\.1's "
                                        r"GPU builds hold code for 5\.0-8\.6 only.*device: cpu"):
        refuse_unsupported("gpu:0,1", [0, 1], caps)
