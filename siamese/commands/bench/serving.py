"""Serving and mined-triplet sections of `python -m siamese.bench` (see siamese.bench).

Serving: the default `convnet` branch exported as float, fused and int8
(siamese.export.optimize) and as ONNX run by onnxruntime (when the extra is installed), and in
float two exports that run the branch several times per image: an ensemble of 3 members
(`model.members: 3`, the second round's Omniglot recipe), test-time averaging over 5 shifted
copies (`export --tta 1`) and the 8 test-time symmetries (`export.symmetries: dihedral`), each
loaded as a consumer loads it (`SymbolBlock.imports`, hybridized with static memory); batch-1
latency (p50, p99 of single synchronised calls) and batch-256 throughput (median of timed
windows). Weights are random (Xavier, BatchNorm statistics drawn), int8 is calibrated on random
images: speed does not depend on the values; accuracy is what `python -m siamese.export`
measures on a real run.

Triplets: the training step of configs/triplet.yaml (convnet, 10 classes x 16 images at
32x32, semi-hard mining, Adam) with the (N, N) miners and the former (N, N, N) ones, in one
process, alternating, so the ratio is taken side by side.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import mxnet as mx
import numpy as np

from ...config import TrainConfig
from ...export.onnx import export_onnx
from ...export.optimize import float_graph, save_graph
from ...export.rewrites import fuse, quantize
from ...export.symmetries import Symmetric
from ...export.tta import ShiftAveraged
from ...formats.bundle import load_symbol
from ...losses.triplet import BatchTripletLoss
from ...models.branches import Members, get_branch
from ...models.fused import fused_available, set_fused
from ...train.step import TrainStep
from ...train.trainer import build_trainer
from .baselines import CubeBatchTripletLoss

EMBEDDING = 64


def _branch(size: int, members: int = 1):
    mx.random.seed(0)
    if members == 1:
        b = get_branch("convnet", EMBEDDING)
    else:
        b = Members(lambda **kw: get_branch("convnet", EMBEDDING, **kw), members)
    b.initialize(mx.init.Xavier())
    b(mx.nd.zeros((1, 1, size, size)))
    for p in b.collect_params().values():
        if p.name.endswith(("running_mean", "beta")):
            p.set_data(mx.nd.random.uniform(-0.2, 0.2, shape=p.shape))
        elif p.name.endswith(("running_var", "gamma")):
            p.set_data(mx.nd.random.uniform(0.5, 1.5, shape=p.shape))
    return b


def _latency(fn, calls: int) -> dict:
    for _ in range(5):
        fn()
    ms = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t) * 1e3)
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def _throughput(fn, n: int, windows: int, reps: int) -> dict:
    fn()
    rates = []
    for _ in range(windows):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        rates.append(n * reps / (time.perf_counter() - t))
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def _mxnet_runner(folder: Path):
    """A consumer's view of an export: loaded, hybridized with static memory (one per batch
    size, so neither re-plans)."""
    block = load_symbol(folder, "branch", ["data"])
    block.hybridize(static_alloc=True, static_shape=True)
    return lambda x: block(mx.nd.array(x)).asnumpy()


def _onnx_runner(folder: Path, size: int):
    try:
        import onnx  # noqa: F401  (the extra: both are needed)
        import onnxruntime as ort
    except ImportError:
        return None
    export_onnx(folder / "branch-symbol.json", folder / "branch-0000.params", (1, size, size),
                folder / "branch.onnx")
    session = ort.InferenceSession(str(folder / "branch.onnx"),
                                   providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"data": x})[0]


def _dihedral(size: int) -> Symmetric:
    """The branch under the 8 symmetries of the square (siamese.export.symmetries)."""
    block = Symmetric(_branch(size), "dihedral", size)
    block.reverse.initialize()
    return block


def serving(size: int, quick: bool) -> dict:
    """Latency and throughput of the float, fused, int8 and ONNX exports at size x size, and of
    the float exports of a 3-member ensemble, of test-time averaging (5 copies) and of the 8
    test-time symmetries."""
    rng = np.random.default_rng(0)
    x256 = rng.normal(size=(256, 1, size, size)).astype(np.float32)
    x1 = x256[:1]
    kinds: dict = {}
    out = {"size": size, "kinds": kinds}
    with tempfile.TemporaryDirectory() as tmp:
        sym, args, aux = float_graph(_branch(size), x1, Path(tmp))
        graphs = {"float": (sym, args, aux),
                  "fused": fuse(sym, args, aux)[:3],
                  "int8": quantize(sym, args, aux, x256, "naive")[:3],
                  "float, 3 members": float_graph(_branch(size, members=3), x1, Path(tmp)),
                  "float, tta 1": float_graph(ShiftAveraged(_branch(size), 1, True), x1,
                                              Path(tmp)),
                  # 8 copies per image: at 105x105 with 3 members too, batch 256 needed over
                  # 23 GB and was killed; their cost is about the product of the two rows
                  "float, dihedral": float_graph(_dihedral(size), x1, Path(tmp))}
        runners = {}
        for kind, (s, a, x) in graphs.items():
            folder = Path(tmp) / kind
            folder.mkdir()
            save_graph(folder, s, a, x)
            runners[kind] = (_mxnet_runner(folder), _mxnet_runner(folder))
        onnx = _onnx_runner(Path(tmp) / "float", size)
        if onnx is not None:
            runners["onnxruntime (float)"] = (onnx, onnx)
        reps = 2 if quick else 4 if size == 105 else 12
        for kind, (one, many) in runners.items():
            # --quick (the test suite) bounds the dihedral export's memory: 256 images are
            # 2048 branch passes, 15.6 GB of peak memory at 105x105 (docs/speed.md)
            n = 32 if quick and kind == "float, dihedral" else 256
            kinds[kind] = {
                "batch1": _latency(lambda f=one: f(x1), 50 if quick else 200),
                "batch": n,  # images per call of the throughput
                "batch256_images_per_s": _throughput(lambda f=many, b=n: f(x256[:b]), n,
                                                     3 if quick else 5, reps)}
    return out


def alternating(steps: dict, windows: int, reps: int, per_call: int) -> dict:
    """{name: median, min, max of items/s}: timed windows of `reps` synchronised calls of each
    step in turn, so every step sees the same machine state; `per_call` items per call."""
    rates: dict = {name: [] for name in steps}
    for _ in range(windows):
        for name, step in steps.items():
            step()
            mx.nd.waitall()
            t = time.perf_counter()
            for _ in range(reps):
                step()
            mx.nd.waitall()
            rates[name].append(per_call * reps / (time.perf_counter() - t))
    return {name: {"median": statistics.median(r), "min": min(r), "max": max(r)}
            for name, r in rates.items()}


def triplet_step(quick: bool) -> dict:
    """Mined-triplet training step (configs/triplet.yaml's shape), new and former miners."""
    rng = np.random.default_rng(0)
    n, size = 160, 32
    x = mx.nd.array(rng.normal(size=(n, 1, size, size)))
    labels = mx.nd.array(np.repeat(np.arange(10), 16))
    ids = mx.nd.arange(n)
    setups = {}
    for name, cls in (("pairs (N, N)", BatchTripletLoss), ("cube (N, N, N)",
                                                           CubeBatchTripletLoss)):
        mx.random.seed(0)
        branch = get_branch("convnet", EMBEDDING)
        branch.initialize(mx.init.Xavier())
        loss = cls(0.5, "euclidean", "semi_hard")
        branch(x[:2])
        set_fused(branch, fused_available([mx.cpu()]))  # the training graph of today
        branch.hybridize(static_alloc=True, static_shape=True)
        loss.hybridize(static_alloc=True, static_shape=True)
        trainer = build_trainer(list(branch.collect_params().values()),
                                TrainConfig(optimizer="adam", lr=0.002), 1)
        step = TrainStep(branch, loss, trainer, [mx.cpu()], n)
        setups[name] = (lambda s=step: s((x, labels, ids)))
        setups[name]()
    result = alternating(setups, 3 if quick else 7, 4 if quick else 10, n)
    return {"batch_images": n, "size": size, "mining": "semi_hard", "images_per_s": result,
            "ratio": result["pairs (N, N)"]["median"] / result["cube (N, N, N)"]["median"]}


def serving_table(r: dict) -> list:
    if "serving" not in r:
        return []
    lines = ["", "serving (export loaded as consumers load it; batch 1 latency, batch 256 "
             "throughput)", f"{'size':>7} {'export':>20} {'p50 ms':>8} {'p99 ms':>8} "
             f"{'images/s':>9} {'spread':>13} {'x float':>7}"]
    for s in r["serving"]:
        base = s["kinds"]["float"]["batch256_images_per_s"]["median"]
        for kind, k in s["kinds"].items():
            t = k["batch256_images_per_s"]
            lines.append(f"{s['size']:>4}^2 {kind:>20} {k['batch1']['p50_ms']:>8.2f} "
                         f"{k['batch1']['p99_ms']:>8.2f} {t['median']:>9.0f} "
                         f"{t['min']:>6.0f}-{t['max']:<6.0f} {t['median'] / base:>7.2f}")
    return lines


def triplet_table(r: dict) -> list:
    if "triplet_step" not in r:
        return []
    t = r["triplet_step"]
    lines = ["", f"mined-triplet training step ({t['size']}^2, {t['batch_images']} images = "
             f"10 classes x 16, {t['mining']}, hybrid, alternating windows)"]
    for name, v in t["images_per_s"].items():
        lines.append(f"  {name:>15}: {v['median']:.0f} images/s (spread {v['min']:.0f}-"
                     f"{v['max']:.0f})")
    return lines + [f"  ratio: {t['ratio']:.2f}x"]
