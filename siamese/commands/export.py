"""python -m siamese.export RUN_DIR [--checkpoint best|last] [--onnx] [--out DIR]
       [--optimize fused | --quantize int8 [--calibration naive|entropy] [--calib-images N]]
       [--tta K] [--symmetries none|flip|rotations|dihedral] [--force]

Rebuilds the run's model from a checkpoint (and the config saved inside it), chooses the
threshold on the run's validation pairs for those weights, and exports the branch with the same
code as the end of training, verified by reloading (and by onnxruntime with --onnx).

--optimize fused / --quantize int8 write a serving export instead (default folder
RUN_DIR/export-fused or RUN_DIR/export-int8; siamese.export.optimize): compared with the float
branch on the run's test images and scored on its test pairs; refused when it loses more than
0.002 test AUC unless --force. int8 is calibrated on the run's validation images.

--tta K writes an export whose branch averages each embedding over the image and its four
copies shifted by K pixels, inside the graph (siamese.export.tta; 5x the inference cost;
default folder RUN_DIR/export-tta<K>); the threshold is chosen on the validation pairs with
the averaged embeddings.

--symmetries NAME writes an export whose branch embeds each image under these turns and mirror
images side by side (siamese.export.symmetries; V times the inference cost; default: the run's
export.symmetries, and a folder RUN_DIR/export-NAME when it differs from it); the threshold is
chosen on the validation pairs with those embeddings. With --tta K each turned image is
averaged over its shifts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mxnet as mx

from ..config.rules import check_symmetries
from ..errors import UserError
from ..export.onnx import require_onnx
from ..export.optimize import export_optimized, get_optimizer
from ..export.rerun import calibration_images, read_test_pairs, threshold_and_sample
from ..export.symmetries import symmetric_net
from ..export.tta import averaging_net
from ..export.writer import TOLERANCE, export_run, model_meta
from ..formats.preprocess import SYMMETRIES
from ..formats.rundir import RunDir
from ..models.architectures import architecture_of
from ..scoring.comparator import training_comparator
from ..train.pairing import get_pairing
from ..train.rebuild import load_run
from .common import run, setup_logging


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m siamese.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a run directory written by train.py")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--onnx", action="store_true", help="also write branch.onnx (needs .[onnx])")
    p.add_argument("--out", type=Path, help="export directory (default RUN_DIR/export, "
                   "RUN_DIR/export-fused or RUN_DIR/export-int8)")
    p.add_argument("--optimize", choices=("none", "fused"), default="none",
                   help="fused: oneDNN subgraph graph (BatchNorm folded, conv+BN+ReLU fused)")
    p.add_argument("--quantize", choices=("none", "int8"), default="none",
                   help="int8: fused and quantized, calibrated on validation images")
    p.add_argument("--calibration", choices=("naive", "entropy"), default="naive",
                   help="int8 calibration: naive (min/max) or entropy (KL divergence)")
    p.add_argument("--calib-images", type=int, default=512,
                   help="validation images to calibrate int8 on (default 512)")
    p.add_argument("--tta", type=int, default=0, metavar="K",
                   help="test-time averaging inside the exported branch: the mean embedding "
                        "of the image and its 4 copies shifted by K pixels (5x the cost)")
    p.add_argument("--symmetries", choices=tuple(SYMMETRIES),
                   help="embed each image under these turns / mirror images, side by side "
                        "(default: the run's export.symmetries)")
    p.add_argument("--force", action="store_true",
                   help="keep an optimized export that loses more than 0.002 test AUC")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> int:
        setup_logging()
        if args.tta < 0:
            raise UserError("--tta: a shift in pixels, 0 or more")
        if args.onnx:
            require_onnx()  # fail before any work when the extra is missing
        cfg, net, loss = load_run(args.run_dir, args.checkpoint)
        arch = architecture_of(net)
        labelled = get_pairing(cfg.loss.name, cfg.data.sampler, arch).labelled
        if args.tta:
            if not arch.averagable:
                raise UserError(f"--tta: averages the embeddings of one siamese branch; the "
                                f"model of {args.run_dir} is a {arch.kind}")
            net = averaging_net(net, args.tta, cfg.model.normalize)
        trained_with = cfg.export.symmetries
        if args.symmetries is not None:
            cfg.export.symmetries = args.symmetries
            check_symmetries(cfg)
        if cfg.export.symmetries != "none":
            net = symmetric_net(net, cfg.export.symmetries, cfg.data.image_size[1])
        spec, sample = threshold_and_sample(cfg, net, loss, args.run_dir, labelled)
        kind = "int8" if args.quantize == "int8" else args.optimize
        if kind != "none":
            return optimized(args, kind, cfg, net, spec)
        tta = f"-tta{args.tta}" if args.tta else ""
        sym = f"-{cfg.export.symmetries}" if cfg.export.symmetries != trained_with else ""
        out = args.out or RunDir(args.run_dir).export.with_name(f"export{tta}{sym}")
        diffs = export_run(net, spec, cfg.data, cfg.model, sample, out, mx.cpu(),
                           onnx=args.onnx, tta=args.tta, symmetries=cfg.export.symmetries)
        print(f"exported {out} from checkpoints/{args.checkpoint}.ckpt; threshold "
              f"{spec['threshold']:.4f} ({spec['threshold_rule']}, validation pairs"
              f"{', averaged embeddings' if args.tta else ''}"
              f"{'' if cfg.export.symmetries == 'none' else ', ' + cfg.export.symmetries})")
        for fmt, d in diffs.items():
            print(f"  {fmt}: largest |embedding difference| {d:.3g} on {len(sample)} images "
                  f"(tolerance {TOLERANCE:g})")
        return 0

    return run(body)


def optimized(args, kind: str, cfg, net, spec: dict) -> int:
    """The fused or int8 export of a siamese run (siamese.export.optimize)."""
    if args.onnx:
        raise UserError("--onnx converts the float export only: mx.onnx has no conversion "
                        "for the fused and int8 operators; export --onnx separately")
    if not architecture_of(net).optimizable:
        raise UserError(f"{args.run_dir}: --optimize/--quantize export a siamese branch; this "
                        f"run's model is {architecture_of(net).kind}")
    d, run_dir = cfg.data, RunDir(args.run_dir)
    sym = cfg.export.symmetries
    out = args.out or run_dir / (f"export-{kind}{f'-tta{args.tta}' if args.tta else ''}"
                                 f"{f'-{sym}' if sym != 'none' else ''}")
    test = read_test_pairs(d, run_dir.pair_file("test"))
    calib, source = None, ""
    if get_optimizer(kind).calibrated:
        calib, source = calibration_images(d, run_dir.pair_file("val"), args.calib_images)
    comp = training_comparator(net, spec, d.mean, d.std, cfg.train.eval_batch_size, mx.cpu(),
                               d.right_view)
    meta = model_meta(d, cfg.model, spec, args.tta, cfg.export.symmetries)
    r = export_optimized(comp, net.branch, out, meta, kind, test, calib, args.calibration,
                         source, args.force)
    t, v = r["test"], r["verified"]
    print(f"exported {out} ({kind}) from checkpoints/{args.checkpoint}.ckpt; threshold "
          f"{spec['threshold']:.4f} (validation pairs)")
    print(f"  embeddings of {v['images']} test images against the float branch: cosine min "
          f"{v['min_cosine']:.6f} mean {v['mean_cosine']:.6f}, largest |difference| "
          f"{v['max_abs_diff']:.3g}")
    for name in ("float", kind):
        m = t[name]
        print(f"  {name:>5} on {m['n_pairs']} test pairs: AUC {m['auc']:.4f}  EER "
              f"{m['eer']:.4f}  accuracy {m['accuracy']:.4f}")
    if t["forced"]:
        print(f"  kept with --force: loses {t['auc_loss']:.4f} test AUC")
    return 0


if __name__ == "__main__":
    sys.exit(main())
