"""Train a siamese network: python train.py CONFIG [--set key=value ...] [--run-dir DIR]."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("config", help="YAML config, e.g. configs/pairs.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--run-dir", type=Path, help="run directory (default runs/<config>-<time>)")
    p.add_argument("--force", action="store_true", help="replace a run already in --run-dir")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from siamese.cli import run, setup_logging
    from siamese.config import load_config
    from siamese.rundir import default_run_dir, prepare_run_dir

    def body() -> int:
        cfg = load_config(args.config, args.set)
        run_dir = prepare_run_dir(args.run_dir or default_run_dir(args.config), args.force)
        setup_logging(run_dir / "train.log")
        from siamese.engine import fit

        start = time.perf_counter()
        m = fit(cfg, run_dir, progress=sys.stderr.isatty())
        v, t = m["val"], m["test"]
        print(f"run: {run_dir}")
        print(f"best epoch {m['best_epoch']}; threshold {v['threshold']:.4f} (chosen on "
              f"{v['n_pairs']} validation pairs)")
        print(f"test: auc {t['auc']:.4f}  eer {t['eer']:.4f}  accuracy {t['accuracy']:.4f}  "
              f"({t['n_pairs']} pairs)")
        print(f"export: {run_dir / 'export'}  ({time.perf_counter() - start:.0f}s in all)")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
