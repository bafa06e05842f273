"""What `python train.py CONFIG` runs: the fit loop, then (with the best epoch's weights) the
threshold chosen on validation pairs, the test pairs scored at it, the export and metrics.json.

A front door: it composes training (siamese.train) and export (siamese.export), which do not
know each other.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Optional

from ..config import Config
from ..export.onnx import require_onnx
from ..export.symmetries import symmetric_net
from ..export.writer import export_run
from ..formats.atomic import write_json
from ..formats.rundir import RunDir
from ..train.engine import Parts
from ..train.fit import fit
from ..train.state import State
from ..train.validation import has_pairs, reconstruction_error, validate_and_test

log = logging.getLogger(__name__)


def train_and_export(cfg: Config, run: RunDir, progress: bool = False,
                     resume: Optional[tuple] = None) -> dict:
    """Train (or continue), choose the threshold on validation, score test, export.

    Args:
        run: the run directory.
        resume: (checkpoint path, its meta) to continue from, or None for a fresh run.
    Returns:
        The metrics written to metrics.json.
    """
    if cfg.export.onnx:
        require_onnx()  # before hours of training, not after
    parts, state = fit(cfg, run, progress, resume)
    t0 = time.perf_counter()
    if not has_pairs(parts):
        return finish_unlabelled(parts, run, state)
    if cfg.export.symmetries != "none":  # threshold, test figures and export under them
        parts = replace(parts, net=symmetric_net(parts.net, cfg.export.symmetries,
                                                 cfg.data.image_size[1], parts.ctxs))
    val, test, spec = validate_and_test(parts)
    sample = parts.data.images[parts.data.splits["test"][:16]]
    diff = export_run(parts.net, spec, cfg.data, cfg.model, sample, run.export, parts.ctxs[0],
                      onnx=cfg.export.onnx, symmetries=cfg.export.symmetries)
    metrics = {"val": val, "test": test, "best_epoch": state.best["epoch"],
               "epochs_trained": state.epoch, "stopped_early": state.stopped_early,
               "train_seconds": state.train_seconds, "export_max_abs_diff": diff}
    write_json(run.metrics, metrics)
    log.info("evaluation and export took %.1fs", time.perf_counter() - t0)
    return metrics


def finish_unlabelled(parts: Parts, run: RunDir, state: State) -> dict:
    """Reconstruction-only training on unlabelled images: no pairs, so no threshold and no
    export; the branch is used through model.pretrained = this run directory."""
    metrics = {"val": {"reconstruction": reconstruction_error(parts, "val")},
               "test": {"reconstruction": reconstruction_error(parts, "test")},
               "best_epoch": state.best["epoch"], "epochs_trained": state.epoch,
               "stopped_early": state.stopped_early, "train_seconds": state.train_seconds,
               "exported": False}
    write_json(run.metrics, metrics)
    log.info("no labelled pairs: nothing to threshold or export; start a similarity run from "
             "this one with --set model.pretrained=%s", run)
    return metrics
