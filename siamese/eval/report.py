"""The evaluation tool behind eval.py: a run or an export, a pair list or n-way episodes.

Everything is computed before anything is written, so a failing evaluation leaves no files.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..data.pairfiles import read_pair_file
from ..errors import UserError
from ..formats.pairsets import image_digests, read_digests
from ..formats.rundir import RunDir
from ..identification.report import open_set_report, retrieval_report, select_classes
from .embedmap import embedding_map
from .episodes import read_episodes, score_episodes
from .metrics import (
    best_threshold,
    far_threshold,
    kfold_accuracy,
    rates_at,
    tar_at_far,
    verification,
)
from .model import Model, open_model, run_data_root
from .oneshot import n_way_accuracy
from .tta import check_symmetries, check_tta
from .within import group_rule, image_groups

log = logging.getLogger(__name__)

FARS = ("0.1", "0.01", "0.001")


def pairs_report(model: Model, pair_file: Path, root: Path, progress: bool,
                 allow_outside: bool = False) -> tuple:
    """Verification figures of a pair list; returns (report, scores, labels, the PairList)."""
    pairs = read_pair_file(pair_file, root, allow_outside)
    spec = model.meta["score"]
    scores, names, _ = model.score_list(pairs, root, progress)
    n_images = len(names)
    y, higher = pairs.labels, spec["higher_is_similar"]
    base = verification(scores, y, higher, spec["threshold"])
    sign = 1.0 if higher else -1.0
    best_t, best_acc = best_threshold(sign * scores, y)
    report = {
        "auc": base["auc"], "eer": base["eer"], "accuracy": base["accuracy"],
        "threshold": base["threshold"], "threshold_source": "validation",
        "tar_at_far": {f: tar_at_far(sign * scores, y, float(f)) for f in FARS},
        "best_accuracy": best_acc, "best_threshold": sign * best_t,
        "best_accuracy_note": "oracle: threshold chosen on the scored pairs (optimistic)",
        "n_pairs": int(len(y)), "n_images": n_images, "pairs_file": str(pair_file),
        "model_kind": model.meta["kind"], "scoring": model.scoring_note,
        "pairs_format": pairs.kind,
    }
    if pairs.folds is not None:
        k = kfold_accuracy(scores, y, pairs.folds, higher)
        report.update(kfold_accuracy_mean=k["mean"], kfold_accuracy_std=k["std"],
                      kfold_accuracies=k["accuracies"], kfold_thresholds=k["thresholds"],
                      accuracy_at_model_threshold=base["accuracy"],
                      model_threshold=base["threshold"], accuracy=k["mean"],
                      threshold=float(np.median(k["thresholds"])), threshold_source="folds")
    return report, scores, y, pairs


def check_run_images(run: RunDir, root: Path, names: List[str], images: np.ndarray) -> None:
    """The images of a run's own pair list, read under `root`, must be the run's (the same
    decoded pixels as pairs/digests.csv records): another folder with the same layout would
    give a silently wrong calibration. Runs written before digests existed are not checked."""
    saved = read_digests(run.digest_file)
    if not saved:
        return
    for name, digest in zip(names, image_digests(images)):
        if saved.get(name) != digest:
            raise UserError(f"{root / name}: not the image the run {run} was validated on "
                            f"(other pixels); give --root the run's own data.root")


def far_report(model: Model, val_file: Path, root: Path, fars: List[float], scores: np.ndarray,
               labels: np.ndarray, progress: bool, allow_outside: bool = False) -> List[dict]:
    """Thresholds chosen on validation pairs for target false accept rates, and the rates
    they give on the scored pairs (never chosen on the pairs being scored)."""
    val = read_pair_file(val_file, root, allow_outside)
    spec = model.meta["score"]
    val_scores, names, images = model.score_list(val, root, progress)
    if model.run_dir is not None and Path(val_file) == RunDir(model.run_dir).pair_file("val"):
        check_run_images(RunDir(model.run_dir), root, names, images)
    higher = spec["higher_is_similar"]
    out = []
    for far in fars:
        chosen = far_threshold(val_scores, val.labels, higher, far)
        got = rates_at(scores, labels, higher, chosen["threshold"])
        out.append({"target_far": far, "threshold": chosen["threshold"],
                    "val_far": chosen["far"], "val_tar": chosen["tar"], "far": got["far"],
                    "tar": got["tar"], "val_pairs": str(val_file)})
    return out


def n_way_report(model: Model, root: Path, ways: List[int], shots: int, episodes: int,
                 seed: int, progress: bool, classes: str = "all",
                 within: Optional[str] = None) -> Dict[str, dict]:
    """N-way K-shot accuracy with 95% CI for each N, on the class folders under `root`.

    classes: "all"; "unseen" (only classes without a training image in the run, read from
        its pairs/split.csv); "val" or "test" (only the run's validation or test classes of a
        data.split: class run: choose on "val", report "test").
    within: a data.groups rule (name, csv): each N also gets `within_group`, the accuracy of
        episodes whose classes all come from one group (siamese.eval.within).
    """
    folder, keep, names = select_classes(root, model.run_dir, classes)
    if max(ways) > len(names):
        raise UserError(f"--n-way {max(ways)}: {root} has only {len(names)} "
                        f"{'' if classes == 'all' else classes + ' '}classes")
    groups = image_groups(within, root, folder, keep)
    scores = model.pair_scores(root, [folder.paths[i] for i in keep], progress)
    out = {}
    for n in ways:
        args = (scores, folder.labels[keep], model.meta["score"], n, shots, episodes, seed,
                folder.classes)
        out[str(n)] = dict(n_way_accuracy(*args), classes=classes, n_classes=len(names))
        if groups is not None:
            out[str(n)]["within_group"] = dict(n_way_accuracy(*args, groups), rule=within,
                                               groups=int(len(np.unique(groups))))
    return out


@dataclass
class Request:
    """What eval.py asks for (see its --help)."""

    pairs: Optional[Path] = None
    root: Optional[Path] = None
    ways: List[int] = field(default_factory=list)
    shots: int = 1
    episodes: int = 1000
    seed: int = 0
    fars: Sequence[float] = ()
    val_pairs: Optional[Path] = None
    classes: str = "all"
    allow_outside: bool = False
    episode_file: Optional[Path] = None
    plot_embeddings: bool = False
    retrieval: bool = False
    open_set: bool = False
    unknown_fraction: float = 0.5
    index: str = "auto"
    progress: bool = False
    within_group: Optional[str] = None  # "run" (the run's data.groups), "name" or "csv"
    tta: int = 0  # shift of test-time averaging in pixels (0 = none)
    symmetries: str = "none"  # turns embedded side by side (siamese.data.turns.SYMMETRIES)


def _defaults(model: Model, target: Path, r: Request) -> Request:
    """The request with the run directory's defaults filled in, checked."""
    if r.root is None and model.run_dir is not None:
        r.root = run_data_root(model.run_dir)
    folders = r.ways or r.plot_embeddings or r.retrieval or r.open_set
    if r.pairs is None and not folders and r.episode_file is None:
        if model.run_dir is None:
            raise UserError(f"{target}: an export directory needs --pairs FILE, --n-way N or "
                            f"--episode-file")
        r.pairs = RunDir(model.run_dir).pair_file("test")
    if r.root is None and (r.pairs is not None or folders):
        raise UserError("--root: needed to find the images of --pairs / --n-way / "
                        "--retrieval / --open-set / --plot-embeddings")
    if r.fars and r.val_pairs is None:
        if model.run_dir is None:
            raise UserError("--far: an export directory needs --val-pairs FILE to choose the "
                            "threshold on (never on the pairs being scored)")
        r.val_pairs = RunDir(model.run_dir).pair_file("val")
    if r.fars and r.pairs is None:
        raise UserError("--far: needs pairs to score (--pairs FILE, or a run directory)")
    return r


def build_report(target: Path, request: Request) -> tuple:
    """The whole evaluation; returns (report, what the pictures need, model). Writes nothing.

    The pictures' data: {"pairs": (scores, labels, (left paths, right paths), root)} when pairs
    were scored, {"map": (points, labels, class names, images)} with plot_embeddings.

    With `fars`, a threshold for each target rate is chosen on `val_pairs` (default: the run's
    pairs/val.csv) and applied to the scored pairs.
    """
    start = time.perf_counter()
    model = open_model(target)
    check_tta(model.meta, request.tta, model.export_dir, model.comparator.embeds)
    check_symmetries(model.meta, request.symmetries, model.export_dir, model.comparator.embeds)
    model.tta, model.symmetries = request.tta, request.symmetries
    r = _defaults(model, target, request)
    report: Dict[str, object] = {"model": str(model.export_dir),  # shift averaged over:
                                 "tta": r.tta or int(model.meta.get("tta", 0)),
                                 "symmetries": r.symmetries if r.symmetries != "none" else
                                 model.meta.get("symmetries", "none")}
    pictures: Dict[str, tuple] = {}
    if r.pairs is not None:
        rep, scores, labels, pairs = pairs_report(model, Path(r.pairs), Path(r.root),
                                                  r.progress, r.allow_outside)
        report.update(rep)
        pictures["pairs"] = (scores, labels, (pairs.left, pairs.right), Path(r.root))
        if r.fars:
            report["far_calibration"] = far_report(model, Path(r.val_pairs), Path(r.root),
                                                   list(r.fars), scores, labels, r.progress,
                                                   r.allow_outside)
    if r.ways:
        report["n_way"] = n_way_report(model, Path(r.root), r.ways, r.shots, r.episodes,
                                       r.seed, r.progress, r.classes,
                                       group_rule(model.run_dir, r.within_group))
    if r.episode_file is not None:
        report["episode_file"] = episodes_report(model, r)
    if r.retrieval:
        report["retrieval"], pictures["retrieval"] = retrieval_report(
            model, Path(r.root), r.classes, r.progress, r.index)
    if r.open_set:
        report["open_set"], pictures["open_set"] = open_set_report(
            model, Path(r.root), r.classes, r.shots, r.unknown_fraction, r.seed, r.progress,
            r.index)
    if r.plot_embeddings:
        pictures["map"] = embedding_map(model, Path(r.root), r.seed, r.progress)
    report["seconds"] = time.perf_counter() - start
    return report, pictures, model


def episodes_report(model: Model, r: Request) -> dict:
    """Nearest-support accuracy on fixed episodes (Lake's run folders or a CSV file)."""
    episodes, root = read_episodes(r.episode_file, r.root if str(r.episode_file).endswith(
        ".csv") and r.root is not None else None, r.allow_outside)
    paths = sorted({p for ep in episodes for p in ep.support + ep.query})
    scores = model.pair_scores(root, paths, r.progress)
    out = score_episodes(episodes, {p: k for k, p in enumerate(paths)}, scores,
                         model.meta["score"]["higher_is_similar"])
    return dict(out, source=str(r.episode_file), root=str(root),
                rule="nearest support image under the model's score")
