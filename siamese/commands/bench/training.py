"""python -m siamese.bench [--quick] [--out bench.json] [--only SECTION]

Speed of the default `convnet` branch on this machine, against the measured matrix-multiply
ceiling (the better of MXNet's dot and oneDNN's inner product): training step (twice/concat,
hybridized/imperative, 32x32 batch 128 and 105x105 batch 32 pairs; today's step and the one
before the fused operators, side by side in one process), the real fit loop on the
shipped digits, inference, and peak memory. Each training configuration runs in its own process
(so its peak resident memory is its own); every figure is the median of several timed windows
after a warm-up, with the spread. Serving (float, fused, int8 exports and onnxruntime: batch-1
latency, batch-256 throughput) and the mined-triplet step (the (N, N) miners against the
former (N, N, N) ones, side by side): siamese.commands.bench.serving.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import mxnet as mx
import numpy as np

from ...config import Config, DataConfig, ModelConfig, TrainConfig
from ...losses.pair import ContrastiveLoss
from ...models.architectures import SiameseNet
from ...models.branches import get_branch
from ...models.flops import training_flops_per_pair
from ...models.fused import fused_available, is_fused, set_fused
from ...scoring.comparator import embed
from ...train.engine import build
from ...train.fit import run_epoch
from ...train.state import State
from ...train.step import TrainStep
from ...train.trainer import build_trainer
from ...train.validation import validate
from .baselines import PlainCheckStep
from .http import SECTIONS, http_sections, http_tables
from .serving import alternating, serving, serving_table, triplet_step, triplet_table

SIZES = {32: 128, 105: 32}  # image side -> batch of pairs
EMBEDDING = 64  # as configs/pairs.yaml


def timed(fn, warmup: int, windows: int, reps: int) -> dict:
    """Median and spread of `reps` calls per window, in calls per second (synchronised)."""
    for _ in range(warmup):
        fn()
    mx.nd.waitall()
    rates = []
    for _ in range(windows):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        mx.nd.waitall()
        rates.append(reps / (time.perf_counter() - t))
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def ceiling_gflops(n: int = 2048, tries: int = 5) -> float:
    """Best single-precision matrix-multiply rate, GFLOP/s, n x n: the better of `mx.nd.dot`
    (MXNet's BLAS) and `FullyConnected` (oneDNN's inner product). Either one alone can be far
    below what the machine does: on one of ours dot reached 86 GFLOP/s and oneDNN 350."""
    a, b = mx.nd.random.uniform(shape=(n, n)), mx.nd.random.uniform(shape=(n, n))
    kernels = [lambda: mx.nd.dot(a, b),
               lambda: mx.nd.FullyConnected(a, b, no_bias=True, num_hidden=n)]
    best = 0.0
    for kernel in kernels:
        kernel().wait_to_read()
        for _ in range(tries):
            t = time.perf_counter()
            kernel().wait_to_read()
            best = max(best, 2.0 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return best


def convnet_step(size: int, mode: str, today: bool, hybrid: bool = True) -> tuple:
    """(step, net): one training step of the default convnet branch on a fixed random batch
    (SIZES[size] pairs), as training runs it today (fused operators where oneDNN has them, the
    check by sums of squares) or as it ran before (plain operators, one sum per gradient)."""
    batch = SIZES[size]
    rng = np.random.default_rng(0)
    x1, x2 = (mx.nd.array(rng.normal(size=(batch, 1, size, size))) for _ in range(2))
    y = mx.nd.array(rng.integers(0, 2, batch))
    mx.random.seed(0)
    net = SiameseNet(get_branch("convnet", EMBEDDING), mode)
    net.initialize(mx.init.Xavier())
    loss = ContrastiveLoss()
    net(x1[:2], x2[:2])
    set_fused(net, today and fused_available([mx.cpu()]))
    if hybrid:
        net.hybridize(static_alloc=True, static_shape=True)
        loss.hybridize(static_alloc=True, static_shape=True)
    trainer = build_trainer(list(net.collect_params().values()), TrainConfig(), 1)
    step = (TrainStep if today else PlainCheckStep)(net, loss, trainer, [mx.cpu()], batch)
    return (lambda: step((x1, x2, y))), net


def step_config(size: int, mode: str, hybrid: bool, quick: bool) -> dict:
    """Training-step throughput of one configuration (run in its own process): today's step
    (fused operators on a CPU with oneDNN, the gradient check by sums of squares) and the step
    before them (plain operators, one sum per gradient), in alternating windows."""
    batch = SIZES[size]
    steps, nets = {}, {}
    for name in ("now", "before"):
        steps[name], nets[name] = convnet_step(size, mode, name == "now", hybrid)
        for _ in range(3):
            steps[name]()
    reps = max(2, int((6 if quick else 20) * 128 / batch / (1 if size == 32 else 6)))
    rate = alternating(steps, 3 if quick else 5, reps, batch)
    flops = training_flops_per_pair(nets["now"].branch, (1, size, size))
    return {"size": size, "batch_pairs": batch, "forward_mode": mode, "hybridized": hybrid,
            "fused": is_fused(nets["now"]), "pairs_per_s": rate["now"],
            "before_pairs_per_s": rate["before"],
            "ratio": rate["now"]["median"] / rate["before"]["median"],
            "gflop_per_pair": flops / 1e9, "gflops": rate["now"]["median"] * flops / 1e9,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def fit_config(quick: bool) -> dict:
    """The real training loop on data/digits (loading, augmentation, sampling, logging)."""
    root = Path(__file__).resolve().parents[3] / "data" / "digits"
    cfg = Config(data=DataConfig(root=str(root), augment_shift=2),
                 model=ModelConfig(embedding_size=EMBEDDING),
                 train=TrainConfig(batch_size=128, pairs_per_epoch=2560 if quick else 8192,
                                   epochs=3), device="cpu")
    t = time.perf_counter()
    parts = build(cfg)
    startup = time.perf_counter() - t
    policy = type("Keep", (), {"before": lambda *a: None, "handle": lambda *a: None})()
    rates = []
    with parts.stop as stop:
        for epoch in range(cfg.train.epochs):
            state = State(epoch=epoch)
            t = time.perf_counter()
            run_epoch(parts, state, stop, policy, progress=False)
            rates.append(cfg.train.pairs_per_epoch // 128 * 128 / (time.perf_counter() - t))
    t = time.perf_counter()
    validate(parts, "test")
    eval_s = time.perf_counter() - t
    fit = rates[1:]  # the first epoch warms up
    return {"pairs_per_s": {"median": statistics.median(fit), "min": min(fit), "max": max(fit)},
            "startup_s": startup, "eval_test_s": eval_s,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def inference(size: int, quick: bool) -> dict:
    net = get_branch("convnet", EMBEDDING)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 1, size, size)))
    net.hybridize(static_alloc=True, static_shape=True)
    images = np.random.default_rng(0).integers(0, 255, (1024, size, size, 1), dtype=np.uint8)
    n = 256 * (2 if quick or size == 105 else 4)
    rate = timed(lambda: embed(net, images[:n], [0.5], [0.5], 256, mx.cpu()), warmup=1,
                 windows=3, reps=1)
    return {"size": size, "batch": 256, "images_per_s": {k: v * n for k, v in rate.items()}}


def in_subprocess(args: list) -> dict:
    out = subprocess.run([sys.executable, "-m", "siamese.bench", "--one", json.dumps(args)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_one(spec: list) -> dict:
    kind, *rest = spec
    return {"step": step_config, "fit": fit_config, "infer": inference, "serving": serving,
            "triplet": triplet_step}[kind](*rest)


def collect(quick: bool, only: str = "all") -> dict:
    """Run every measurement (or one section); each in a fresh process but inference."""
    r = {"machine": _machine(), "quick": quick}
    if only in ("all", "serving"):
        r["serving"] = [in_subprocess(["serving", size, quick]) for size in SIZES]
    if only in ("all", "triplet"):
        r["triplet_step"] = in_subprocess(["triplet", quick])
    if only in ("all", "steps"):
        r.update(collect_steps(quick))
    r.update(http_sections(only, quick))  # needs the serve extra: only when asked for
    return r


def collect_steps(quick: bool) -> dict:
    """Training steps, the fit loop and inference, against the matrix-multiply ceiling."""
    ceiling = ceiling_gflops()
    steps = []
    for size in SIZES:
        for mode in ("concat", "twice"):
            for hybrid in (True, False):
                if quick and not hybrid and size == 105:
                    continue  # the slowest configurations: full runs only
                r = in_subprocess(["step", size, mode, hybrid, quick])
                r["fraction_of_ceiling"] = r["gflops"] / ceiling
                steps.append(r)
                print(f"  step {size}x{size} {mode:6s} {'hybrid' if hybrid else 'imperative'}: "
                      f"{r['pairs_per_s']['median']:.0f} pairs/s (before "
                      f"{r['before_pairs_per_s']['median']:.0f}: {r['ratio']:.2f}x)",
                      file=sys.stderr)
    fit = in_subprocess(["fit", quick])
    pure = next(s for s in steps if s["size"] == 32 and s["forward_mode"] == "concat"
                and s["hybridized"])
    fit["ratio_to_step"] = fit["pairs_per_s"]["median"] / pure["pairs_per_s"]["median"]
    infer = [inference(size, quick) for size in SIZES]
    for r in infer:
        flops = training_flops_per_pair(_branch(r["size"]), (1, r["size"], r["size"])) / 6
        r["gflops"] = r["images_per_s"]["median"] * flops / 1e9
        r["fraction_of_ceiling"] = r["gflops"] / ceiling
    return {"ceiling_gflops": ceiling, "training_step": steps, "fit": fit, "inference": infer}


def _branch(size: int):
    b = get_branch("convnet", EMBEDDING)
    b.initialize()
    b(mx.nd.zeros((1, 1, size, size)))
    return b


def _machine() -> dict:
    import os
    import platform

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        names = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                 if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    return {"cpu": cpu, "cores": cores,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "mxnet": mx.__version__,
            "python": platform.python_version()}


def table(r: dict) -> str:
    lines = [f"machine: {r['machine']['cpu']}, {r['machine']['cores']} cores, "
             f"OMP_NUM_THREADS={r['machine']['omp_num_threads']}"]
    lines += serving_table(r) + triplet_table(r) + http_tables(r)
    if "training_step" in r:
        lines += ["", steps_table(r)]
    return "\n".join(lines)


def steps_table(r: dict) -> str:
    c = r["ceiling_gflops"]
    lines = [f"ceiling (2048^2 matrix multiply, dot or oneDNN, best of 5): {c:.0f} GFLOP/s on "
             f"{r['machine']['cores']} cores", "",
             "training step (forward, backward, update, synchronised); before: plain operators "
             "and one sum per gradient, timed in alternating windows",
             f"{'size':>7} {'batch':>5} {'mode':>6} {'graph':>10} {'pairs/s':>9} "
             f"{'spread':>13} {'before':>7} {'x':>5} {'GFLOP/s':>8} {'of ceiling':>10} "
             f"{'RSS MB':>7}"]
    for s in r["training_step"]:
        p = s["pairs_per_s"]
        lines.append(f"{s['size']:>4}^2 {s['batch_pairs']:>6} {s['forward_mode']:>6} "
                     f"{'hybrid' if s['hybridized'] else 'imperative':>10} {p['median']:>9.0f} "
                     f"{p['min']:>6.0f}-{p['max']:<6.0f} {s['before_pairs_per_s']['median']:>7.0f}"
                     f" {s['ratio']:>5.2f} {s['gflops']:>8.1f} {s['fraction_of_ceiling']:>10.1%} "
                     f"{s['peak_rss_mb']:>7.0f}")
    f = r["fit"]
    lines += ["", f"fit loop on data/digits (32^2, batch 128, concat, hybrid): "
                  f"{f['pairs_per_s']['median']:.0f} pairs/s (spread {f['pairs_per_s']['min']:.0f}"
                  f"-{f['pairs_per_s']['max']:.0f}), {f['ratio_to_step']:.0%} of the pure step; "
                  f"start-up {f['startup_s']:.1f}s; test-set evaluation {f['eval_test_s']:.2f}s; "
                  f"RSS {f['peak_rss_mb']:.0f} MB", "", "inference (batch 256, hybrid)"]
    for i in r["inference"]:
        lines.append(f"{i['size']:>4}^2: {i['images_per_s']['median']:.0f} images/s "
                     f"({i['gflops']:.1f} GFLOP/s, {i['fraction_of_ceiling']:.1%} of ceiling)")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m siamese.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer and shorter windows (< 2 min)")
    p.add_argument("--out", type=Path, default=Path("bench.json"))
    p.add_argument("--only", choices=("all", *SECTIONS), default="all", help="one section: "
                   + "; ".join(f"{k} ({v})" for k, v in SECTIONS.items()))
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement, JSON out
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return 0
    start = time.perf_counter()
    result = collect(args.quick, args.only)
    result["seconds"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\nwritten {args.out} in {result['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
