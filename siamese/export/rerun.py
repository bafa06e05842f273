"""Export a trained run again (`siamese export RUN_DIR`): the threshold chosen on the run's
validation pairs for the weights being exported, the run's test pairs to verify a serving
export on, and the validation images int8 is calibrated on. The run itself is rebuilt by the
command (siamese.train.rebuild), which export does not import."""

from __future__ import annotations

from pathlib import Path

import mxnet as mx
import numpy as np

from ..data.images import load_images
from ..data.pairfiles import read_pair_file
from ..errors import no_pairs_run
from ..eval.thresholds import with_threshold
from ..formats.preprocess import to_tensor
from ..formats.rundir import RunDir
from ..scoring.comparator import score_pair_list, training_comparator


def threshold_and_sample(cfg, net, loss, run_dir: Path, labelled: bool) -> tuple:
    """(the score spec with the threshold chosen on the run's pairs/val.csv for these weights,
    16 of its test images to verify an export with). `labelled`: the run trains on labels
    (a reconstruction-only run has no pairs to choose on)."""
    root, d, run = Path(cfg.data.root), cfg.data, RunDir(run_dir)
    spec = loss.score_spec()
    if run.pair_file("val").read_text().count("\n") <= 1 and not labelled:
        raise no_pairs_run(run_dir)
    val = read_pair_file(run.pair_file("val"), root)
    scorer = training_comparator(net, spec, d.mean, d.std, cfg.train.eval_batch_size, mx.cpu(),
                                 d.right_view)
    scores, _, _ = score_pair_list(scorer, val, root, d.image_size, d.channels)
    test = read_pair_file(run.pair_file("test"), root)
    sample = load_images([root / p for p in sorted(set(test.left))[:16]], d.image_size,
                         d.channels)
    return with_threshold(spec, scores, val.labels, cfg.eval.threshold), sample


def read_test_pairs(d, path: Path) -> tuple:
    """(uint8 images, left index, right index, labels) of a pair file, each image once."""
    pairs = read_pair_file(path, Path(d.root))
    names = sorted(set(pairs.left) | set(pairs.right))
    images = load_images([Path(d.root) / n for n in names], d.image_size, d.channels)
    index = {n: k for k, n in enumerate(names)}
    return (images, np.array([index[p] for p in pairs.left]),
            np.array([index[p] for p in pairs.right]), np.asarray(pairs.labels))


def calibration_images(d, val_file: Path, limit: int) -> tuple:
    """(float32 (M, C, H, W) preprocessed, a line saying what they are): up to `limit` images
    of the validation pairs (both sides), in a seed-0 shuffle, for int8 calibration."""
    val = read_pair_file(val_file, Path(d.root))
    names = sorted(set(val.left) | set(val.right))
    names = [names[k] for k in np.random.default_rng(0).permutation(len(names))][:limit]
    calib = to_tensor(load_images([Path(d.root) / n for n in names], d.image_size, d.channels),
                      d.mean, d.std)
    return calib, f"{len(names)} validation images (pairs/val.csv, both sides, seed-0 shuffle)"
