"""Training batches, drawn afresh each epoch from the decoded images: pairs, triplets, P x K
batches, or none (reconstruction only); and the images of the reconstruction loss.

Each source is registered in SOURCES; which one a run uses is chosen with its loss
(siamese.train.pairing).
"""

from __future__ import annotations

import logging
from typing import Callable, Dict

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..errors import UserError
from ..formats.preprocess import to_tensor
from .augment import Augment, as_augment
from .prepare import PairData
from .sampling import PairSampler
from .views import get_view
from .workers import WorkerPool

log = logging.getLogger(__name__)


class TrainPairs:
    """Training pairs drawn afresh each epoch, batched by a Gluon DataLoader.

    Args:
        data: the prepared data.
        batch_size: pairs per batch; the last short batch is dropped (static shapes).
        pairs_per_epoch: pairs drawn per epoch, half same, half different.
        augment_shift: an Augment (siamese.data.augment), or a translation in pixels.
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
        self.augment = as_augment(augment_shift)
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

    def rows(self, epoch: int, rng: np.random.Generator) -> np.ndarray:
        """This worker's examples of one epoch, a whole number of batches."""
        rows = self.draw(self.pairs_per_epoch, rng)[self.rank::self.workers]
        return rows[:self.batches_per_epoch() * self.batch_size]

    def arrays(self, samples, rng: np.random.Generator) -> tuple:
        """numpy arrays of one batch: `n_inputs` images (B, C, H, W), then the targets."""
        cols, targets = self.columns(np.asarray(samples))
        n, k = len(cols), self.n_inputs
        sides = self.index[cols.T.reshape(-1)]  # (k * B,): side 1 of every example, side 2...
        raw = self.data.images[sides]
        if k == 2 and self.data.right_view != "none":
            raw[n:] = get_view(self.data.right_view)(raw[n:])  # the right image of every pair
        x = to_tensor(self.augment(raw, rng), self.data.mean, self.data.std)
        return tuple([x[i * n:(i + 1) * n] for i in range(k)] + list(targets))

    def loader(self, epoch: int):
        """One epoch's batches: tuples of NDArrays (images..., targets...).

        With data.workers, worker processes compute them, batch b augmented from a generator
        seeded with (seed, epoch, b) (the same for any number of workers); without, in this
        process, from one generator for the epoch."""
        rng = np.random.default_rng([self.seed, 3, epoch])
        rows = self.rows(epoch, rng)
        if self.data.workers:
            return _as_nd(self.pool().map(
                (rows[b * self.batch_size:(b + 1) * self.batch_size], epoch, b)
                for b in range(len(rows) // self.batch_size)))

        def batchify(samples: list) -> tuple:
            return tuple(mx.nd.array(a, dtype="float32") for a in self.arrays(samples, rng))

        return gluon.data.DataLoader(
            gluon.data.ArrayDataset(rows), batch_size=self.batch_size, shuffle=False,
            last_batch="discard", batchify_fn=batchify,
        )

    def _batch_task(self, rows: np.ndarray, epoch: int, b: int) -> tuple:
        return self.arrays(rows, np.random.default_rng([self.seed, 5, epoch, b]))

    def pool(self) -> WorkerPool:
        """The data.workers processes, started on first use and kept until `close`."""
        if getattr(self, "_pool", None) is None:
            self._pool = WorkerPool(self._batch_task, self.data.workers)
        return self._pool

    def close(self) -> None:
        """Stop the worker processes, if any."""
        if getattr(self, "_pool", None) is not None:
            self._pool.close()
            self._pool = None


def _as_nd(batches):
    for arrays in batches:
        yield tuple(mx.nd.array(a, dtype="float32") for a in arrays)


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

    def rows(self, epoch: int, rng: np.random.Generator) -> np.ndarray:
        rows = self.draw(self.pairs_per_epoch, rng)[self.rank::self.workers]
        return rows[:self.batches_per_epoch()]

    def arrays(self, row, rng: np.random.Generator) -> tuple:
        """(x (PK, C, H, W), class labels (PK,), image ids (PK,)) of one batch row."""
        x = to_tensor(self.augment(self.data.images[self.index[row]], rng), self.data.mean,
                      self.data.std)
        return x, self.sampler.labels[row].astype(np.float32), row.astype(np.float32)

    def loader(self, epoch: int):
        """Yields (x (PK, C, H, W), labels (PK,), ids (PK,)) NDArrays, one per batch."""
        rng = np.random.default_rng([self.seed, 3, epoch])
        rows = self.rows(epoch, rng)
        if self.data.workers:
            return _as_nd(self.pool().map((row, epoch, b) for b, row in enumerate(rows)))
        return _as_nd(self.arrays(row, rng) for row in rows)


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
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.augment = as_augment(augment_shift)
        self.index = data.splits["train_all"]
        self.rank, self.workers = shard

    def batches(self, epoch: int, n: int):
        """n NDArrays (B, C, H, W), the k-th for step k of the epoch."""
        rng = np.random.default_rng([self.seed, 4, epoch])
        picks = rng.integers(0, len(self.index), (n * self.workers, self.batch_size))
        for row in picks[self.rank::self.workers][:n]:
            raw = self.data.images[self.index[row]]
            yield mx.nd.array(to_tensor(self.augment(raw, rng), self.data.mean,
                                        self.data.std))


def _pairs(cls):
    def make(data, d, batch_size, per_epoch, seed, shard):
        return cls(data, batch_size, per_epoch, Augment.of(d), seed, shard)
    return make


SOURCES: Dict[str, Callable[..., TrainPairs]] = {
    "pairs": _pairs(TrainPairs),
    "triplets": _pairs(TrainTriplets),
    "pk": lambda data, d, batch_size, per_epoch, seed, shard: TrainPK(
        data, d.classes_per_batch, d.images_per_class, per_epoch, Augment.of(d), seed, shard),
    "none": lambda data, d, batch_size, per_epoch, seed, shard: NoExamples(
        data, batch_size, per_epoch, seed, shard),
}


def build_source(name: str, data: PairData, data_cfg, batch_size: int, per_epoch: int,
                 seed: int, shard: tuple = (0, 1)) -> TrainPairs:
    """The training batches of SOURCES[name].

    Args:
        data_cfg: the `data` config section (augmentation; P and K of P x K batches).
        batch_size: examples per batch (not used by P x K, whose batch is P * K images).
        per_epoch: examples (images for P x K) drawn per epoch, over all workers.
        shard: (rank, workers) in distributed training.
    """
    if name not in SOURCES:
        raise UserError(f"unknown training batch source {name!r} (valid: {', '.join(SOURCES)})")
    return SOURCES[name](data, data_cfg, batch_size, per_epoch, seed, shard)
