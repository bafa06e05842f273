"""`python train.py` / `siamese train`: train a siamese network, choose its threshold on
validation pairs, score the test pairs, export.

    python train.py CONFIG [--set key=value ...] [--run-dir DIR] [--force]
    python train.py [CONFIG] --resume RUN_DIR [--set train.epochs=N ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..config import load_config
from ..errors import UserError
from ..formats.rundir import default_run_dir, prepare_run_dir
from ..train.distributed import rank_and_size, remove_scratch, worker_scratch
from ..train.resume import check_workers, plan_resume
from .common import run, setup_logging
from .pipeline import train_and_export


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="train.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="YAML config, e.g. configs/pairs.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--run-dir", type=Path, help="run directory (default runs/<config>-<time>)")
    p.add_argument("--force", action="store_true", help="replace a run already in --run-dir")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its newest readable checkpoint")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> int:
        if args.resume:
            setup_logging()
            cfg, run_dir, resume = plan_resume(args.resume, args.config, args.set)
            if resume is not None:
                check_workers(resume[1], rank_and_size(cfg.train.kvstore)[1], resume[0])
        elif not args.config:
            raise UserError("give a config file (e.g. configs/pairs.yaml) or --resume RUN_DIR")
        else:
            cfg, resume, run_dir = load_config(args.config, args.set), None, None
        scratch = worker_scratch(cfg.train.kvstore, run_dir)  # ranks above 0 write here
        if scratch is not None:
            run_dir = scratch
        elif args.resume and resume is None:  # killed before its first checkpoint: restart
            run_dir.clear_for_restart()
        elif resume is None:
            run_dir = prepare_run_dir(args.run_dir or default_run_dir(args.config), args.force)
        setup_logging(run_dir.train_log)
        start = time.perf_counter()
        try:
            m = train_and_export(cfg, run_dir, progress=sys.stderr.isatty(), resume=resume)
        finally:
            remove_scratch(scratch)
        v, t = m["val"], m["test"]
        print(f"run: {run_dir}")
        if m.get("exported") is False:
            print(f"best epoch {m['best_epoch']}: reconstruction error val "
                  f"{v['reconstruction']:.4f}, test {t['reconstruction']:.4f} (no labelled "
                  f"pairs, nothing exported)")
            print(f"use it: python train.py CONFIG --set model.pretrained={run_dir}  "
                  f"({time.perf_counter() - start:.0f}s in all)")
            return 0
        early = f", stopped early after {m['epochs_trained']}" if m["stopped_early"] else ""
        print(f"best epoch {m['best_epoch']}{early}; threshold {v['threshold']:.4f} "
              f"({v['threshold_rule']}, chosen on {v['n_pairs']} validation pairs)")
        print(f"test: auc {t['auc']:.4f}  eer {t['eer']:.4f}  accuracy {t['accuracy']:.4f}  "
              f"tar {t['tar']:.4f} far {t['far']:.4f}  ({t['n_pairs']} pairs)")
        print(f"export: {run_dir.export}  ({time.perf_counter() - start:.0f}s in all)")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
