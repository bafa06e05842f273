"""Measure what data storage costs: start-up time (first and second run), peak resident memory
and training throughput of each storage, on one image set.

    python scripts/measure_data.py ROOT --size 64 --variants memory cache pack-cache \
        pack-stream-w2 [--pairs 2560] [--cache-dir DIR] [--out results.jsonl]

ROOT is an image folder (scripts/make_synthetic.py); `pack-*` variants use ROOT.rec beside it
(python -m siamese.pack ROOT --out ROOT). Each variant runs in fresh processes, twice: the
first run starts from an empty cache directory, the second finds the cache the first wrote.
A run: build (scan, decode or map, model) and every image's digest, as train.py does before
its first step (the start-up), then two training epochs of --pairs pairs with the real loop;
the throughput is the second epoch's. Peak memory is sampled from /proc every 50 ms: the
process's resident set, split into anonymous memory (the decoded array, the network) and file
pages (a mapped cache, which the kernel may drop at will), plus the worker processes' own.
Run under `flock /work/cpu.lock` with OMP_NUM_THREADS=2 (see docs/data.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {  # name -> (root suffix, storage, workers)
    "memory": ("", "memory", 0),
    "cache": ("", "cache", 0),
    "stream-w2": ("", "stream", 2),
    "cache-w2": ("", "cache", 2),
    "pack-memory": (".rec", "memory", 0),
    "pack-cache": (".rec", "cache", 0),
    "pack-stream-w2": (".rec", "stream", 2),
}


def status_kb(pid: int) -> dict:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def children(pid: int) -> list:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class Peak(threading.Thread):
    """The largest resident set (and its anonymous and file parts) seen, in MB."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = {"rss_mb": 0.0, "anon_mb": 0.0, "file_mb": 0.0, "workers_anon_mb": 0.0}
        self.running = True

    def run(self) -> None:
        me = os.getpid()
        while self.running:
            s = status_kb(me)
            kids = sum(status_kb(c).get("RssAnon", 0) for c in children(me))
            for key, kb in (("rss_mb", s.get("VmRSS", 0)), ("anon_mb", s.get("RssAnon", 0)),
                            ("file_mb", s.get("RssFile", 0)), ("workers_anon_mb", kids)):
                self.peak[key] = max(self.peak[key], kb / 1024)
            time.sleep(0.05)


def child(a: argparse.Namespace) -> None:
    """One measured run in this process; prints one JSON line."""
    peak = Peak()
    peak.start()
    t0 = time.perf_counter()
    from siamese.config import from_dict
    from siamese.formats.pairsets import image_digests
    from siamese.train.engine import build
    from siamese.train.fit import run_epoch
    from siamese.train.signals import StopOnSignal
    from siamese.train.state import NONFINITE, State

    t_import = time.perf_counter() - t0
    cfg = from_dict({
        "data": {"root": a.root, "image_size": a.size, "channels": 3, "storage": a.storage,
                 "workers": a.workers, "val_pairs": 200, "test_pairs": 200,
                 **({"cache_dir": a.cache_dir} if a.storage == "cache" else {})},
        "train": {"epochs": 2, "batch_size": a.batch, "pairs_per_epoch": a.pairs},
        "device": "cpu"})
    t0 = time.perf_counter()
    parts = build(cfg)
    digests = parts.data.digests or image_digests(parts.data.images)
    startup = time.perf_counter() - t0
    state, seconds = State(), []
    policy = NONFINITE["stop"](0)
    with StopOnSignal() as stop:
        for epoch in range(2):
            t0 = time.perf_counter()
            state.epoch, state.batch = epoch, 0
            run_epoch(parts, state, stop, policy, False)
            seconds.append(time.perf_counter() - t0)
    parts.batches.close()
    peak.running = False
    peak.join()
    n = parts.batches.batches_per_epoch() * parts.batches.batch_size
    print(json.dumps({"images": len(digests), "import_s": round(t_import, 2),
                      "startup_s": round(startup, 2), "epoch1_s": round(seconds[0], 2),
                      "pairs_per_s": round(n / seconds[1], 1),
                      **{k: round(v, 1) for k, v in peak.peak.items()},
                      "storage": parts.data.storage}))


def one(root: str, size: int, name: str, a: argparse.Namespace, cache_dir: str) -> dict:
    suffix, storage, workers = VARIANTS[name]
    cmd = [sys.executable, __file__, "--child", root + suffix, "--size", str(size),
           "--storage", storage, "--workers", str(workers), "--pairs", str(a.pairs),
           "--batch", str(a.batch), "--cache-dir", cache_dir]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode:
        sys.exit(f"{name}: failed\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--variants", nargs="+", default=["memory", "cache"], choices=VARIANTS)
    p.add_argument("--pairs", type=int, default=2560, help="training pairs per epoch")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--runs", type=int, default=2, help="runs per variant (1 = first only)")
    p.add_argument("--cache-dir", default="", help="default: a fresh temporary folder")
    p.add_argument("--out", default="", help="append the results as JSON lines")
    p.add_argument("--table", action="store_true",
                   help="print the JSON lines of ROOT (a results file) as a markdown table")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--storage", help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        child(a)
        return 0
    if a.table:
        print(table([json.loads(line) for line in Path(a.root).read_text().splitlines()]))
        return 0
    root = str(Path(a.root).resolve())
    for name in a.variants:
        cache_dir = a.cache_dir or tempfile.mkdtemp(prefix="siamese-measure-")
        try:
            for run in range(1, a.runs + 1):
                r = one(root, a.size, name, a, cache_dir)
                row = {"root": root, "size": a.size, "variant": name, "run": run,
                       "cpu": cpu_model(), **r}
                print(f"{name:15s} run {run}  {r['images']:7d} images  start-up "
                      f"{r['startup_s']:7.1f}s  {r['pairs_per_s']:7.1f} pairs/s  peak RSS "
                      f"{r['rss_mb']:7.0f} MB (anon {r['anon_mb']:.0f}, file "
                      f"{r['file_mb']:.0f}, workers anon {r['workers_anon_mb']:.0f})",
                      flush=True)
                if a.out:
                    with open(a.out, "a") as fh:
                        fh.write(json.dumps(row) + "\n")
        finally:
            if not a.cache_dir:
                shutil.rmtree(cache_dir, ignore_errors=True)
    return 0


def table(rows: list) -> str:
    """One line per (set, size, variant): start-up of the first and second run, throughput
    (mean of the runs, each run's second epoch), memory of the last run."""
    out = ["| images | size | storage | start-up 1st / 2nd run (s) | pairs/s (runs) | "
           "vs memory | peak RSS MB (anon + file) | workers' anon MB |",
           "|---:|---:|---|---:|---:|---:|---:|---:|"]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["images"], r["size"], r["variant"]), {})[r["run"]] = r

    def speed(runs: dict) -> float:
        return sum(r["pairs_per_s"] for r in runs.values()) / len(runs)

    for (n, size, variant), runs in groups.items():
        first, last = runs[min(runs)], runs[max(runs)]
        base = groups.get((n, size, "memory"))
        ratio = f"{speed(runs) / speed(base):.0%}" if base else "-"
        second = f"{last['startup_s']:.1f}" if len(runs) > 1 else "-"
        each = ", ".join(f"{r['pairs_per_s']:.0f}" for _, r in sorted(runs.items()))
        out.append(f"| {n:,} | {size} | {variant} | {first['startup_s']:.1f} / {second} | "
                   f"{speed(runs):.0f} ({each}) | {ratio} | {last['rss_mb']:.0f} "
                   f"({last['anon_mb']:.0f} + {last['file_mb']:.0f}) | "
                   f"{last['workers_anon_mb']:.0f} |")
    return "\n".join(out)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


if __name__ == "__main__":
    sys.exit(main())
