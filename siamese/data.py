"""Datasets for training and evaluation: decoded images cached once, pairs batched by Gluon.

Every image of the run is decoded once into a uint8 array (N, H, W, C). Training batches gather
pair rows from that cache, so an epoch costs no file I/O and no per-image Python transform.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List

import mxnet as mx
import numpy as np
from mxnet import gluon

from .comparator import get_view
from .errors import UserError
from .images import decode_all, to_tensor
from .pairs import ImageFolder, PairSampler, scan_folder, split_indices

log = logging.getLogger(__name__)


@dataclass
class PairData:
    """Everything a run needs from the data section.

    Attributes:
        folder: the scanned image folder.
        images: uint8 (N, H, W, C), every image of the folder, decoded and resized.
        splits: "train" / "val" / "test" -> image indices into `images`.
        pairs: "val" / "test" -> (n, 3) rows of (i, j, label), indices into `images`.
    """

    folder: ImageFolder
    images: np.ndarray
    splits: Dict[str, np.ndarray]
    pairs: Dict[str, np.ndarray]
    mean: List[float]
    std: List[float]
    right_view: str = "none"  # data.right_view: applied to the right image of every pair


def prepare(cfg, seed: int, progress: bool = False, unlabelled_ok: bool = False) -> PairData:
    """Scan, decode, split and draw the fixed validation and test pairs (seeded).

    Args:
        cfg: the `data` config section.
        seed: the run seed.
        unlabelled_ok: reconstruction-only training: a flat folder of images is accepted, and
            splits that cannot form pairs give none (evaluation is reconstruction only).
    """
    folder = drop_bad_images(scan_folder(cfg.root, flat=unlabelled_ok), cfg, progress)
    images = folder.images
    assert images is not None
    splits = split_indices(folder.labels, cfg.split, cfg.val_fraction, cfg.test_fraction, seed)
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
    return PairData(folder, images, splits, pairs, list(cfg.mean), list(cfg.std),
                    cfg.right_view)


def labeled_subset(labels: np.ndarray, train: np.ndarray, per_class: int,
                   seed: int) -> np.ndarray:
    """A seeded choice of `per_class` training images of each class (all of a smaller class):
    the only images pairs and triplets are drawn from (data.labeled_per_class)."""
    rng = np.random.default_rng([seed, 5])
    keep = []
    for c in np.unique(labels[train]):
        members = train[labels[train] == c]
        keep.append(rng.choice(members, min(per_class, len(members)), replace=False))
    return np.sort(np.concatenate(keep))


def drop_bad_images(folder: ImageFolder, cfg, progress: bool) -> ImageFolder:
    """Decode every image once (a full decode: truncated files fail here, not later as black
    images). Unreadable ones are skipped with a warning each, or (`data.bad_images: error`)
    stop the run naming them. Returns the folder without them, `images` attached."""
    images, bad = decode_all([folder.root / p for p in folder.paths], cfg.image_size,
                             cfg.channels, progress=progress)
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
    return ImageFolder(folder.root, [folder.paths[i] for i in keep], labels, folder.classes,
                       images)


def random_shift(batch: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Translate each image (N, H, W, C) by up to `max_shift` pixels, filling with edge values."""
    if max_shift <= 0:
        return batch
    n, h, w, _ = batch.shape
    s = max_shift
    padded = np.pad(batch, ((0, 0), (s, s), (s, s), (0, 0)), mode="edge")
    dy, dx = rng.integers(0, 2 * s + 1, (2, n))
    rows = (dy[:, None] + np.arange(h))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + np.arange(w))[:, None, :]  # (N, 1, W)
    return padded[np.arange(n)[:, None, None], rows, cols]


class TrainPairs:
    """Training pairs drawn afresh each epoch, batched by a Gluon DataLoader.

    Args:
        data: the prepared data.
        batch_size: pairs per batch; the last short batch is dropped (static shapes).
        pairs_per_epoch: pairs drawn per epoch, half same, half different.
        augment_shift: random translation in pixels, 0 for none.
        seed: the run seed; epoch e draws from a generator seeded with (seed, e), so a resumed
            run sees the same pairs as an uninterrupted one.
        shard: (rank, workers): in distributed training every worker draws the same examples
            and keeps every workers-th one from its rank, pairs_per_epoch // workers in all.

    A batch is a tuple of NDArrays: `n_inputs` image arrays (B, C, H, W), then the targets
    (here the labels (B,), 1 = same).
    """

    n_inputs = 2
    unit = "pairs"

    def __init__(self, data: PairData, batch_size: int, pairs_per_epoch: int,
                 augment_shift: int, seed: int, shard: tuple = (0, 1)):
        self.data = data
        self.index = data.splits["train"]
        self.sampler = PairSampler(data.folder.labels[self.index], "train")
        self.batch_size = batch_size
        self.pairs_per_epoch = pairs_per_epoch
        self.shift = augment_shift
        self.seed = seed
        self.rank, self.workers = shard
        if self.batches_per_epoch() == 0:
            raise UserError(f"train.pairs_per_epoch: smaller than one batch of "
                            f"{self.batch_size} {self.unit}, no full batch")

    def batches_per_epoch(self) -> int:
        """The same on every worker, so no worker waits for another at the end of an epoch."""
        return self.pairs_per_epoch // self.workers // self.batch_size

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n examples: rows of training-split indices, the last column the label."""
        return self.sampler.sample(n, rng)

    def columns(self, rows: np.ndarray) -> tuple:
        """(image index columns (B, n_inputs) into the split, targets as numpy arrays)."""
        return rows[:, :2], [rows[:, 2].astype(np.float32)]

    def loader(self, epoch: int) -> gluon.data.DataLoader:
        """The DataLoader for one epoch: yields tuples of NDArrays (images..., targets...)."""
        rng = np.random.default_rng([self.seed, 3, epoch])
        rows = self.draw(self.pairs_per_epoch, rng)[self.rank::self.workers]
        rows = rows[:self.batches_per_epoch() * self.batch_size]
        images, mean, std, shift = self.data.images, self.data.mean, self.data.std, self.shift
        index, k = self.index, self.n_inputs
        view = None if self.data.right_view == "none" else get_view(self.data.right_view)

        def batchify(samples: list) -> tuple:
            cols, targets = self.columns(np.asarray(samples))
            n = len(cols)
            sides = index[cols.T.reshape(-1)]  # (k * B,): side 1 of every example, side 2, ...
            raw = images[sides]
            if k == 2 and view is not None:
                raw[n:] = view(raw[n:])  # the right image of every pair
            x = to_tensor(random_shift(raw, shift, rng), mean, std)
            return tuple([mx.nd.array(x[i * n:(i + 1) * n]) for i in range(k)]
                         + [mx.nd.array(t, dtype="float32") for t in targets])

        return gluon.data.DataLoader(
            gluon.data.ArrayDataset(rows), batch_size=self.batch_size, shuffle=False,
            last_batch="discard", batchify_fn=batchify,
        )


class TrainTriplets(TrainPairs):
    """Random triplets (anchor, positive, negative) for `loss.name: triplet`; no targets."""

    n_inputs = 3
    unit = "triplets"

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.sampler.triplets(n, rng)

    def columns(self, rows: np.ndarray) -> tuple:
        return rows, []


class TrainPK(TrainPairs):
    """Batches of P classes x K images for mined triplets: (images, class labels, image ids).

    One batch is one example row of P * K image indices. Classes with fewer than K training
    images repeat some of them (the loss never pairs an image with itself); classes with one
    image are left out; both are reported.
    """

    n_inputs = 1
    unit = "images"

    def __init__(self, data: PairData, p: int, k: int, images_per_epoch: int,
                 augment_shift: int, seed: int, shard: tuple = (0, 1)):
        self.p, self.k = p, k
        super().__init__(data, p * k, images_per_epoch, augment_shift, seed, shard)
        count = self.sampler.count
        usable = int((count >= 2).sum())
        if usable < p:
            raise UserError(f"data.classes_per_batch: {p} classes per batch, but the training "
                            f"split has {usable} class(es) with 2 or more images")
        short = int(((count >= 2) & (count < k)).sum())
        if short:
            log.warning("data.images_per_class: %d of %d training classes have fewer than "
                        "K=%d images; their batches repeat images (never as their own "
                        "positive)", short, len(count), k)
        if usable < len(count):
            log.warning("%d training class(es) with a single image are left out of P x K "
                        "batches", len(count) - usable)

    def batches_per_epoch(self) -> int:
        return self.pairs_per_epoch // self.workers // self.batch_size

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        batches = max(n // self.batch_size, 1)
        return np.stack([self.sampler.pk_batch(self.p, self.k, rng) for _ in range(batches)])

    def loader(self, epoch: int):
        """Yields (x (PK, C, H, W), labels (PK,), ids (PK,)) NDArrays, one per batch."""
        rng = np.random.default_rng([self.seed, 3, epoch])
        rows = self.draw(self.pairs_per_epoch, rng)[self.rank::self.workers]
        rows = rows[:self.batches_per_epoch()]
        images, mean, std, shift = self.data.images, self.data.mean, self.data.std, self.shift
        labels = self.sampler.labels
        for row in rows:
            x = to_tensor(random_shift(images[self.index[row]], shift, rng), mean, std)
            yield (mx.nd.array(x), mx.nd.array(labels[row], dtype="float32"),
                   mx.nd.array(row, dtype="float32"))


class NoExamples(TrainPairs):
    """Reconstruction-only training (loss.name: none): empty batches; the images come from
    ReconImages. An epoch is pairs_per_epoch // batch_size steps, as for pairs."""

    n_inputs = 0
    unit = "images"

    def __init__(self, data: PairData, batch_size: int, images_per_epoch: int, seed: int,
                 shard: tuple = (0, 1)):
        self.data, self.batch_size, self.pairs_per_epoch = data, batch_size, images_per_epoch
        self.index = data.splits["train_all"]
        self.rank, self.workers = shard
        if self.batches_per_epoch() == 0:
            raise UserError("train.pairs_per_epoch: smaller than train.batch_size, no batch")
        if len(self.index) == 0:
            raise UserError(f"data.root: {data.folder.root}: no training images")

    def loader(self, epoch: int):
        return iter([()] * self.batches_per_epoch())


class ReconImages:
    """Batches of training images for the reconstruction loss: every training image, labelled
    or not (data.labeled_per_class), drawn at random, seeded by epoch (so resume replays)."""

    def __init__(self, data: PairData, batch_size: int, augment_shift: int, seed: int,
                 shard: tuple = (0, 1)):
        self.data, self.batch_size, self.shift, self.seed = data, batch_size, augment_shift, seed
        self.index = data.splits["train_all"]
        self.rank, self.workers = shard

    def batches(self, epoch: int, n: int):
        """n NDArrays (B, C, H, W), the k-th for step k of the epoch."""
        rng = np.random.default_rng([self.seed, 4, epoch])
        picks = rng.integers(0, len(self.index), (n * self.workers, self.batch_size))
        for row in picks[self.rank::self.workers][:n]:
            raw = self.data.images[self.index[row]]
            yield mx.nd.array(to_tensor(random_shift(raw, self.shift, rng), self.data.mean,
                                        self.data.std))


def train_source(cfg, data: PairData, shard: tuple = (0, 1)) -> TrainPairs:
    """The training batches the config asks for: pairs, triplets or P x K batches."""
    t, d = cfg.train, cfg.data
    if cfg.loss.name == "none":
        return NoExamples(data, t.batch_size, t.pairs_per_epoch, cfg.seed, shard)
    if d.sampler == "pk":
        return TrainPK(data, d.classes_per_batch, d.images_per_class, t.pairs_per_epoch,
                       d.augment_shift, cfg.seed, shard)
    kind = TrainTriplets if cfg.loss.name == "triplet" else TrainPairs
    return kind(data, t.batch_size, t.pairs_per_epoch, d.augment_shift, cfg.seed, shard)
