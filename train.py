"""Train a siamese network.

    python train.py CONFIG [--set key=value ...] [--run-dir DIR] [--force]
    python train.py [CONFIG] --resume RUN_DIR [--set train.epochs=N ...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="YAML config, e.g. configs/pairs.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--run-dir", type=Path, help="run directory (default runs/<config>-<time>)")
    p.add_argument("--force", action="store_true", help="replace a run already in --run-dir")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its newest readable checkpoint")
    return p.parse_args(argv)


def resume_plan(args) -> tuple:
    """(config, run_dir, (checkpoint, meta)) for --resume."""
    from siamese.config import load_config
    from siamese.errors import UserError
    from siamese.formats.rundir import RunDir
    from siamese.train.resume import newest_checkpoint, resume_config

    run_dir = RunDir(args.resume)
    if not run_dir.is_run():
        raise UserError(f"{run_dir}: not a run directory (no config.yaml)")
    path, meta = newest_checkpoint(run_dir)
    given = load_config(args.config) if args.config else None
    cfg = resume_config(meta["config"], args.set, given)
    done = meta["epoch"] >= cfg.train.epochs or meta["state"].get("stopped_early")
    if done and run_dir.metrics.exists():
        raise UserError(f"{run_dir}: already finished {meta['epoch']} epochs"
                        f"{' (stopped early)' if meta['state'].get('stopped_early') else ''}; "
                        f"pass --set train.epochs=N with a larger N to train further")
    return cfg, run_dir, (path, meta)


SCRATCH = "siamese-worker"


def worker_scratch(cfg):
    """Distributed workers other than rank 0 write to a scratch folder, removed at the end."""
    from siamese.formats.rundir import RunDir
    from siamese.train.distributed import is_distributed, rank_and_size

    if not is_distributed(cfg.train.kvstore):
        return None
    rank, _ = rank_and_size(cfg.train.kvstore)
    if rank == 0:
        return None
    run = RunDir(tempfile.mkdtemp(prefix=f"{SCRATCH}{rank}-"))
    run.checkpoints.mkdir()
    run.pairs.mkdir()
    return run


def main(argv=None) -> int:
    args = parse_args(argv)
    from siamese.cli import run, setup_logging

    def body() -> int:
        from siamese.config import load_config
        from siamese.errors import UserError
        from siamese.formats.rundir import default_run_dir, prepare_run_dir

        if args.resume:
            setup_logging()
            cfg, run_dir, resume = resume_plan(args)
        elif not args.config:
            raise UserError("give a config file (e.g. configs/pairs.yaml) or --resume RUN_DIR")
        else:
            cfg = load_config(args.config, args.set)
            run_dir = worker_scratch(cfg) or prepare_run_dir(
                args.run_dir or default_run_dir(args.config), args.force)
            resume = None
        setup_logging(run_dir.train_log)
        from siamese.pipeline import train_and_export

        start = time.perf_counter()
        try:
            m = train_and_export(cfg, run_dir, progress=sys.stderr.isatty(), resume=resume)
        finally:
            if run_dir.root.name.startswith(SCRATCH):
                shutil.rmtree(run_dir.root, ignore_errors=True)
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
