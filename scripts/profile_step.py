"""Where the training step of the default `convnet` branch spends its time, per operator, from
MXNet's profiler: today's step (fused operators on a CPU with oneDNN) or, with --plain, the one
before them (plain BatchNorm, ReLU and mean; one sum per gradient in the check).

    python scripts/profile_step.py [--size 32|105] [--mode concat|twice] [--plain] [--steps N]

Prints milliseconds per step for each operator (operator bulking is switched off so that every
operator is timed on its own; the step itself is then a little slower than in siamese.bench).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ["MXNET_EXEC_BULK_EXEC_TRAIN"] = "0"  # time each operator, not bulked segments
os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))  # as siamese does
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mxnet as mx  # noqa: E402
from mxnet import profiler  # noqa: E402

from siamese.commands.bench.training import SIZES, convnet_step  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, choices=sorted(SIZES), default=32)
    p.add_argument("--mode", choices=("concat", "twice"), default="concat")
    p.add_argument("--plain", action="store_true", help="the step before the fused operators")
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args(argv)
    step, _ = convnet_step(args.size, args.mode, today=not args.plain)
    for _ in range(5):
        step()
    mx.nd.waitall()
    profiler.set_config(profile_imperative=True, profile_symbolic=True, aggregate_stats=True,
                        filename=os.devnull)
    profiler.set_state("run")
    for _ in range(args.steps):
        step()
    mx.nd.waitall()
    profiler.set_state("stop")
    ops = json.loads(profiler.dumps(format="json", reset=True))["Time"].get("operator", {})
    rows = sorted(((v["Total"] / args.steps, name) for name, v in ops.items()), reverse=True)
    total = sum(ms for ms, _ in rows)
    print(f"{args.size}x{args.size}, batch {SIZES[args.size]} pairs, {args.mode}, "
          f"{'plain' if args.plain else 'fused'}: {total:.1f} ms of operators per step")
    for ms, name in rows:
        if ms >= 0.05:
            print(f"  {ms:7.2f} ms  {ms / total:5.1%}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
