"""python -m siamese.export RUN_DIR [--checkpoint best|last] [--onnx] [--out DIR]

Rebuilds the run's model from a checkpoint (and the config saved inside it), chooses the
threshold on the run's validation pairs for those weights, and exports the branch with the same
code as the end of training, verified by reloading (and by onnxruntime with --onnx).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mxnet as mx

from ..cli import run, setup_logging
from ..data.images import load_images
from ..data.pairfiles import read_pair_file
from ..errors import no_pairs_run
from ..eval.comparator import score_pair_list, training_comparator
from ..eval.thresholds import calibrate
from ..formats.rundir import RunDir
from ..models.architectures import architecture_of
from ..train.pairing import get_pairing
from ..train.rebuild import load_run
from .onnx import require_onnx
from .writer import TOLERANCE, export_run


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m siamese.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a run directory written by train.py")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--onnx", action="store_true", help="also write branch.onnx (needs .[onnx])")
    p.add_argument("--out", type=Path, help="export directory (default RUN_DIR/export)")
    return p.parse_args(argv)


def validation_threshold(cfg, net, loss, run_dir: Path) -> tuple:
    """(score spec with the threshold chosen on pairs/val.csv, 16 test images to verify with)."""
    root, d, run = Path(cfg.data.root), cfg.data, RunDir(run_dir)
    spec = loss.score_spec()
    labelled = get_pairing(cfg.loss.name, cfg.data.sampler, architecture_of(net)).labelled
    if run.pair_file("val").read_text().count("\n") <= 1 and not labelled:
        raise no_pairs_run(run_dir)
    val = read_pair_file(run.pair_file("val"), root)
    scorer = training_comparator(net, spec, d.mean, d.std, cfg.train.eval_batch_size, mx.cpu(),
                                 d.right_view)
    scores, _, _ = score_pair_list(scorer, val, root, d.image_size, d.channels)
    test = read_pair_file(run.pair_file("test"), root)
    sample = load_images([root / p for p in sorted(set(test.left))[:16]], d.image_size,
                         d.channels)
    return calibrate(spec, scores, val.labels, cfg.eval.threshold), sample


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> int:
        setup_logging()
        if args.onnx:
            require_onnx()  # fail before any work when the extra is missing
        cfg, net, loss = load_run(args.run_dir, args.checkpoint)
        spec, sample = validation_threshold(cfg, net, loss, args.run_dir)
        out = args.out or RunDir(args.run_dir).export
        diffs = export_run(net, spec, cfg.data, cfg.model, sample, out, mx.cpu(),
                           onnx=args.onnx)
        print(f"exported {out} from checkpoints/{args.checkpoint}.ckpt; threshold "
              f"{spec['threshold']:.4f} ({spec['threshold_rule']}, validation pairs)")
        for fmt, d in diffs.items():
            print(f"  {fmt}: largest |embedding difference| {d:.3g} on {len(sample)} images "
                  f"(tolerance {TOLERANCE:g})")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
