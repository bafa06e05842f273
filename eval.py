"""Evaluate a run's exported model: python eval.py RUN_DIR.

Re-embeds the run's test images with the exported branch (export/) and scores the run's test
pairs (pairs/test.csv) at the threshold chosen on validation pairs (export/model.json).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run_dir", type=Path, help="a run directory written by train.py")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from siamese.cli import run, setup_logging
    from siamese.config import read_yaml
    from siamese.errors import UserError

    def body() -> int:
        setup_logging()
        run_dir = args.run_dir
        if not (run_dir / "config.yaml").is_file():
            raise UserError(f"{run_dir}: not a run directory (no config.yaml)")
        root = read_yaml(run_dir / "config.yaml").get("data", {}).get("root")
        from siamese.evaluate import evaluate_export

        m = evaluate_export(run_dir / "export", run_dir / "pairs" / "test.csv", root,
                            progress=sys.stderr.isatty())
        print(f"test: auc {m['auc']:.4f}  eer {m['eer']:.4f}  accuracy {m['accuracy']:.4f}  "
              f"threshold {m['threshold']:.4f}  ({m['n_pairs']} pairs, {m['n_images']} images)")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
