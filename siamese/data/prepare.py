"""Everything a run needs from its images: decoded once, split, with fixed val/test pairs.

Every image of the run is decoded once into a uint8 array (N, H, W, C) in memory, or mapped from
the decoded cache on disk, or decoded batch by batch (siamese.data.storage). Training batches
gather rows from it (siamese.data.loaders).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from ..errors import UserError
from .folder import ImageFolder
from .groups import class_groups
from .sampling import PairSampler
from .sources import scan_source
from .splits import labeled_subset, split_indices
from .storage import Stored, store
from .trainset import TrainSet, train_set

log = logging.getLogger(__name__)


@dataclass
class PairData:
    """Everything a run needs from the data section.

    Attributes:
        folder: the scanned image folder.
        images: uint8 (N, H, W, C), every image of the folder, decoded and resized (an array,
            a memory map of the decoded cache, or siamese.data.storage.StreamImages).
        splits: "train" / "val" / "test" -> image indices into `images`.
        pairs: "val" / "test" -> (n, 3) rows of (i, j, label), indices into `images`.
        digests: every image's digest when the storage knows them, else None.
        storage: how the images are kept (written to the run directory's storage.json).
    """

    folder: ImageFolder
    images: np.ndarray
    splits: Dict[str, np.ndarray]
    pairs: Dict[str, np.ndarray]
    mean: List[float]
    std: List[float]
    right_view: str = "none"  # data.right_view: applied to the right image of every pair
    digests: Optional[List[str]] = None
    storage: Optional[dict] = None
    workers: int = 0  # data.workers: processes decoding and augmenting training batches
    groups: Optional[np.ndarray] = None  # data.groups: group id of each class, or None
    group_names: Optional[List[str]] = None
    train: Optional[TrainSet] = None  # the training examples (rotation classes included)

    def training(self) -> TrainSet:
        """The training examples: `train`, or the training split as it is."""
        if self.train is None:
            index = self.splits["train"]
            self.train = TrainSet(index, self.folder.labels[index], np.zeros(len(index), int),
                                  classes=len(self.folder.classes))
        return self.train

    def image_groups(self, index: np.ndarray) -> Optional[np.ndarray]:
        """The group of each image of `index`, or None without data.groups."""
        return None if self.groups is None else self.groups[self.folder.labels[index]]


def prepare(cfg, seed: int, progress: bool = False, unlabelled_ok: bool = False) -> PairData:
    """Scan, decode, split and draw the fixed validation and test pairs (seeded).

    Args:
        cfg: the `data` config section.
        seed: the run seed.
        unlabelled_ok: reconstruction-only training: a flat folder of images is accepted, and
            splits that cannot form pairs give none (evaluation is reconstruction only).
    """
    folder = scan_source(cfg.root, flat=unlabelled_ok)
    stored = store(folder, cfg, progress)
    folder = drop_bad_images(folder, stored, cfg)
    images = folder.images
    assert images is not None
    groups, group_names = class_groups(cfg.groups, cfg.root, folder.classes)
    splits = split_indices(folder.labels, cfg.split, cfg.val_fraction, cfg.test_fraction, seed,
                           groups)
    if cfg.train_on == "all":  # the final model: every image trains (data.train_on: all)
        splits["train"] = np.arange(len(folder.paths))
    splits["train_all"] = splits["train"]
    if cfg.labeled_per_class:
        splits["train"] = labeled_subset(folder.labels, splits["train"], cfg.labeled_per_class,
                                         seed)
    pairs = {}
    for k, name in enumerate(("val", "test")):
        idx = splits[name]
        try:
            sampler = PairSampler(folder.labels[idx], name)
        except UserError as e:
            if not unlabelled_ok:
                raise
            log.warning("%s; evaluation is by reconstruction only", e)
            pairs[name] = np.zeros((0, 3), np.int64)
            continue
        rows = sampler.sample(getattr(cfg, f"{name}_pairs"), np.random.default_rng([seed, 2, k]),
                              unique=True)
        rows[:, :2] = idx[rows[:, :2]]  # split-local -> folder indices
        pairs[name] = rows
    if not unlabelled_ok:
        PairSampler(folder.labels[splits["train"]], "train")  # fails early if training can't
    log.info("data: %d images, %d classes; split %s: %s images%s; val/test pairs %d/%d",
             len(folder.paths), len(folder.classes), cfg.split,
             "/".join(str(len(splits[k])) for k in ("train_all", "val", "test")),
             f" ({len(splits['train'])} training images labelled)" if cfg.labeled_per_class
             else "", len(pairs["val"]), len(pairs["test"]))
    train = train_set(folder.labels, splits["train"], len(folder.classes), cfg, groups,
                      cfg.image_size)
    if cfg.train_on == "all":
        log.warning("data.train_on: all: validation and test images are trained on too; their "
                    "figures are no longer held-out estimates")
    return PairData(folder, images, splits, pairs, list(cfg.mean), list(cfg.std),
                    cfg.right_view, stored.digests, stored.info, cfg.workers, groups,
                    group_names, train)


def drop_bad_images(folder: ImageFolder, stored: Stored, cfg) -> ImageFolder:
    """Every image was decoded once by the storage (a full decode: truncated files fail there,
    not later as black images). Unreadable ones are skipped with a warning each, or
    (`data.bad_images: error`) stop the run naming them. Returns the folder without them,
    `images` attached."""
    images, bad = stored.images, stored.bad
    if bad and cfg.bad_images == "error":
        names = ", ".join(folder.paths[i] for i, _ in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise UserError(f"data.bad_images: {len(bad)} unreadable image(s) in {folder.root}: "
                        f"{names}{more} (set data.bad_images: skip to leave them out)")
    for _, message in bad:
        log.warning("skipped: %s", message)
    if bad:
        log.warning("skipped %d unreadable image(s) of %d (data.bad_images: skip)", len(bad),
                    len(folder.paths))
    keep = np.setdiff1d(np.arange(len(folder.paths)), [i for i, _ in bad])
    labels = folder.labels[keep]
    counts = np.bincount(labels, minlength=len(folder.classes))
    for c in np.flatnonzero(counts < 2):
        log.warning("class %s has %d usable image(s): it takes part in different pairs only",
                    folder.classes[c], counts[c])
    pack = folder.pack
    if pack is not None:
        pack = type(pack)(pack.records, [pack.keys[i] for i in keep])
    return ImageFolder(folder.root, [folder.paths[i] for i in keep], labels, folder.classes,
                       images, pack)
