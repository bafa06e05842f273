"""Training batches, drawn afresh each epoch from the decoded images: pairs, triplets, P x K
batches, or none (reconstruction only); and the images of the reconstruction loss.

Every source is a BatchSource: `batch_size` examples per batch, `examples_per_epoch` per epoch
over all workers, counted in its `unit` (pairs, triplets or images). Each is registered in
SOURCES; which one a run uses is chosen with its loss (siamese.train.pairing).
"""

from __future__ import annotations

import logging
from typing import Callable, Dict, Iterator

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..errors import UserError
from ..formats.preprocess import to_tensor
from .augment import Augment
from .prepare import PairData
from .sampling import PairSampler
from .views import get_view
from .workers import WorkerPool

log = logging.getLogger(__name__)


class BatchSource:
    """The training batches of one epoch after another.

    Args:
        data: the prepared data.
        batch_size: examples per batch (in `unit`); the last short batch is dropped (static
            shapes).
        examples_per_epoch: examples drawn per epoch over all workers (train.pairs_per_epoch).
        augment: the training augmentation (siamese.data.augment).
        seed: the run seed; epoch e draws from a generator seeded with (seed, e), so a resumed
            run sees the same examples as an uninterrupted one.
        shard: (rank, workers): in distributed training every worker draws the same examples
            and keeps every workers-th one from its rank, examples_per_epoch // workers in all.

    A batch is a tuple of NDArrays: `n_inputs` image arrays (B, C, H, W), then the targets.
    """

    n_inputs = 0
    unit = "images"
    split = "train"  # the split whose images are drawn

    def __init__(self, data: PairData, batch_size: int, examples_per_epoch: int,
                 augment: Augment, seed: int, shard: tuple = (0, 1)):
        self.data, self.batch_size, self.examples_per_epoch = data, batch_size, examples_per_epoch
        self.augment, self.seed = augment, seed
        self.rank, self.workers = shard
        self.index = data.splits[self.split]
        self.sampler = self.new_sampler()
        self._pool = None
        if self.batches_per_epoch() == 0:
            raise UserError(f"train.pairs_per_epoch: smaller than one batch of "
                            f"{self.batch_size} {self.unit}, no full batch")

    def new_sampler(self):
        """What draws this source's examples from the split's labels (None: nothing to draw)."""
        return None

    def batches_per_epoch(self) -> int:
        """The same on every worker, so no worker waits for another at the end of an epoch."""
        return self.examples_per_epoch // self.workers // self.batch_size

    def loader(self, epoch: int) -> Iterator[tuple]:
        """One epoch's batches: tuples of NDArrays (images..., targets...)."""
        raise NotImplementedError

    def batch_arrays(self, rows, rng: np.random.Generator) -> tuple:
        """numpy arrays of one batch from its rows of examples."""
        raise NotImplementedError

    def _batch_task(self, rows: np.ndarray, epoch: int, b: int) -> tuple:
        return self.batch_arrays(rows, np.random.default_rng([self.seed, 5, epoch, b]))

    def pool(self) -> WorkerPool:
        """The data.workers processes, started on first use and kept until `close`."""
        if self._pool is None:
            self._pool = WorkerPool(self._batch_task, self.data.workers)
        return self._pool

    def close(self) -> None:
        """Stop the worker processes, if any."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _as_nd(batches):
    for arrays in batches:
        yield tuple(mx.nd.array(a, dtype="float32") for a in arrays)


class ExampleBatches(BatchSource):
    """Batches of `batch_size` examples, each `n_inputs` images (a pair, a triplet), drawn as
    rows of training-split indices; a subclass says how rows are drawn and what their targets
    are."""

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n examples: rows of training-split indices (then the targets' columns)."""
        raise NotImplementedError

    def columns(self, rows: np.ndarray) -> tuple:
        """(image index columns (B, n_inputs) into the split, targets as numpy arrays)."""
        raise NotImplementedError

    def rows(self, epoch: int, rng: np.random.Generator) -> np.ndarray:
        """This worker's examples of one epoch, a whole number of batches."""
        rows = self.draw(self.examples_per_epoch, rng)[self.rank::self.workers]
        return rows[:self.batches_per_epoch() * self.batch_size]

    def batch_arrays(self, rows, rng: np.random.Generator) -> tuple:
        """numpy arrays of one batch: `n_inputs` images (B, C, H, W), then the targets."""
        cols, targets = self.columns(np.asarray(rows))
        n, k = len(cols), self.n_inputs
        # (k * B,) images: side 1 of every example, side 2... (turned: data.rotate_classes)
        raw = self.data.training().take(self.data.images, cols.T.reshape(-1))
        if k == 2 and self.data.right_view != "none":
            raw[n:] = get_view(self.data.right_view)(raw[n:])  # the right image of every pair
        x = to_tensor(self.augment(raw, rng), self.data.mean, self.data.std)
        return tuple([x[i * n:(i + 1) * n] for i in range(k)] + list(targets))

    def loader(self, epoch: int):
        """One epoch's batches. With data.workers, worker processes compute them, batch b
        augmented from a generator seeded with (seed, epoch, b) (the same for any number of
        workers); without, in this process, from one generator for the epoch."""
        rng = np.random.default_rng([self.seed, 3, epoch])
        rows = self.rows(epoch, rng)
        if self.data.workers:
            return _as_nd(self.pool().map(
                (rows[b * self.batch_size:(b + 1) * self.batch_size], epoch, b)
                for b in range(len(rows) // self.batch_size)))

        def batchify(samples: list) -> tuple:
            return tuple(mx.nd.array(a, dtype="float32") for a in self.batch_arrays(samples, rng))

        return gluon.data.DataLoader(
            gluon.data.ArrayDataset(rows), batch_size=self.batch_size, shuffle=False,
            last_batch="discard", batchify_fn=batchify,
        )


class PairBatches(ExampleBatches):
    """Training pairs, half same, half different; targets: the labels (B,), 1 = same."""

    n_inputs = 2
    unit = "pairs"

    def new_sampler(self) -> PairSampler:
        return self.data.training().sampler()  # rotation classes, same-group batches

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.sampler.sample(n, rng)

    def columns(self, rows: np.ndarray) -> tuple:
        return rows[:, :2], [rows[:, 2].astype(np.float32)]


class TripletBatches(PairBatches):
    """Random triplets (anchor, positive, negative) for `loss.name: triplet`; no targets."""

    n_inputs = 3
    unit = "triplets"

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.sampler.triplets(n, rng)

    def columns(self, rows: np.ndarray) -> tuple:
        return rows, []


class PKBatches(BatchSource):
    """Batches of P classes x K images for mined triplets: (images, class labels, image ids).

    One batch is one row of P * K image indices; `batch_size` is P * K images. Classes with
    fewer than K training images repeat some of them (the loss never pairs an image with
    itself); classes with one image are left out; both are reported.
    """

    n_inputs = 1
    unit = "images"

    def __init__(self, data: PairData, p: int, k: int, images_per_epoch: int,
                 augment: Augment, seed: int, shard: tuple = (0, 1)):
        self.p, self.k = p, k
        super().__init__(data, p * k, images_per_epoch, augment, seed, shard)
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

    def new_sampler(self) -> PairSampler:
        return self.data.training().sampler()  # rotation classes, same-group batches

    def rows(self, epoch: int, rng: np.random.Generator) -> np.ndarray:
        """This worker's batch rows (batches, P * K) of one epoch."""
        batches = max(self.examples_per_epoch // self.batch_size, 1)
        rows = np.stack([self.sampler.pk_batch(self.p, self.k, rng) for _ in range(batches)])
        return rows[self.rank::self.workers][:self.batches_per_epoch()]

    def batch_arrays(self, row, rng: np.random.Generator) -> tuple:
        """(x (PK, C, H, W), class labels (PK,), image ids (PK,)) of one batch row."""
        x = to_tensor(self.augment(self.data.training().take(self.data.images, row), rng),
                      self.data.mean, self.data.std)
        return x, self.sampler.labels[row].astype(np.float32), row.astype(np.float32)

    def loader(self, epoch: int):
        """Yields (x (PK, C, H, W), labels (PK,), ids (PK,)) NDArrays, one per batch."""
        rng = np.random.default_rng([self.seed, 3, epoch])
        rows = self.rows(epoch, rng)
        if self.data.workers:
            return _as_nd(self.pool().map((row, epoch, b) for b, row in enumerate(rows)))
        return _as_nd(self.batch_arrays(row, rng) for row in rows)


class NoBatches(BatchSource):
    """Reconstruction-only training (loss.name: none): empty batches; the images come from
    ReconImages. An epoch is examples_per_epoch // batch_size steps, as for pairs."""

    split = "train_all"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if len(self.index) == 0:
            raise UserError(f"data.root: {self.data.folder.root}: no training images")

    def loader(self, epoch: int):
        return iter([()] * self.batches_per_epoch())


class ReconImages:
    """Batches of training images for the reconstruction loss: every training image, labelled
    or not (data.labeled_per_class), drawn at random, seeded by epoch (so resume replays)."""

    def __init__(self, data: PairData, batch_size: int, augment: Augment, seed: int,
                 shard: tuple = (0, 1)):
        self.data, self.batch_size, self.seed, self.augment = data, batch_size, seed, augment
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


SOURCES: Dict[str, Callable[..., BatchSource]] = {
    "pairs": lambda data, d, batch_size, per_epoch, seed, shard: PairBatches(
        data, batch_size, per_epoch, Augment.of(d), seed, shard),
    "triplets": lambda data, d, batch_size, per_epoch, seed, shard: TripletBatches(
        data, batch_size, per_epoch, Augment.of(d), seed, shard),
    "pk": lambda data, d, batch_size, per_epoch, seed, shard: PKBatches(
        data, d.classes_per_batch, d.images_per_class, per_epoch, Augment.of(d), seed, shard),
    "none": lambda data, d, batch_size, per_epoch, seed, shard: NoBatches(
        data, batch_size, per_epoch, Augment.of(d), seed, shard),
}


def build_source(name: str, data: PairData, data_cfg, batch_size: int, per_epoch: int,
                 seed: int, shard: tuple = (0, 1)) -> BatchSource:
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
