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

from . import checkpoint
from .cli import run, setup_logging
from .comparator import training_comparator
from .config import from_dict
from .errors import UserError, no_pairs_run
from .evaluate import choose_threshold, score_pair_list
from .export import TOLERANCE, export_run
from .images import load_images
from .pairfiles import read_pair_file


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m siamese.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a run directory written by train.py")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--onnx", action="store_true", help="also write branch.onnx (needs .[onnx])")
    p.add_argument("--out", type=Path, help="export directory (default RUN_DIR/export)")
    return p.parse_args(argv)


def load_run(run_dir: Path, which: str):
    """(config, net, loss) rebuilt from a run's checkpoint; UserError naming the file."""
    from .engine import build_blocks

    path = run_dir / "checkpoints" / f"{which}.ckpt"
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint (is {run_dir} a run directory?)")
    meta, _, _ = checkpoint.read(path)
    try:
        cfg = from_dict(meta["config"])
    except (UserError, KeyError) as e:
        raise UserError(f"{path}: the config saved in it is not valid ({e})") from None
    net, loss, autoencoder = build_blocks(cfg, [mx.cpu()])
    blocks = {"model": net, "loss": loss}
    if autoencoder is not None:  # restored to fit the checkpoint; never exported
        blocks["decoder"] = autoencoder.decoder
    checkpoint.restore(path, blocks)
    return cfg, net, loss


def validation_threshold(cfg, net, loss, run_dir: Path) -> tuple:
    """(score spec with the threshold chosen on pairs/val.csv, 16 test images to verify with)."""
    root, d = Path(cfg.data.root), cfg.data
    spec = loss.score_spec()
    if (run_dir / "pairs" / "val.csv").read_text().count("\n") <= 1 and cfg.loss.name == "none":
        raise no_pairs_run(run_dir)
    val = read_pair_file(run_dir / "pairs" / "val.csv", root)
    scorer = training_comparator(net, spec, d.mean, d.std, cfg.train.eval_batch_size, mx.cpu(),
                                 d.right_view)
    scores, _ = score_pair_list(scorer, val, root, d.image_size, d.channels)
    test = read_pair_file(run_dir / "pairs" / "test.csv", root)
    sample = load_images([root / p for p in sorted(set(test.left))[:16]], d.image_size,
                         d.channels)
    return dict(spec, **choose_threshold(scores, val.labels, spec, cfg.eval.threshold)), sample


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> int:
        setup_logging()
        if args.onnx:
            from .onnx_export import require_onnx

            require_onnx()  # fail before any work when the extra is missing
        cfg, net, loss = load_run(args.run_dir, args.checkpoint)
        spec, sample = validation_threshold(cfg, net, loss, args.run_dir)
        out = args.out or args.run_dir / "export"
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
