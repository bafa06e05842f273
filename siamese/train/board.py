"""TensorBoard event files for a run (`log.tensorboard: true`, the `.[tensorboard]` extra:
tensorboardX, which needs neither TensorFlow nor PyTorch): under RUN_DIR/tensorboard/, the
scalars of every epoch (training loss and its parts, validation AUC, EER and accuracy, learning
rate), the training loss every `log.tensorboard_every` steps, and at the end the validation
images' embeddings with their class labels and a sprite of the images for the projector.

`tensorboard --logdir runs` shows every run side by side. Writing never stops a run: a failure
is one warning, and the board goes quiet.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import UserError

log = logging.getLogger(__name__)
EXTRA_HINT = "pip install -e '.[tensorboard]'  (tensorboardX)"
SCALARS = {"train_loss": "train/loss", "train_similarity": "train/similarity",
           "train_reconstruction": "train/reconstruction", "val_auc": "val/auc",
           "val_eer": "val/eer", "val_accuracy": "val/accuracy", "lr": "train/lr",
           "val_reconstruction": "val/reconstruction"}


class Quiet:
    """No TensorBoard: every call does nothing."""

    def step(self, step: int, loss: float) -> None:
        pass

    def epoch(self, row: dict) -> None:
        pass

    def embeddings(self, emb: np.ndarray, labels: list, images: np.ndarray) -> None:
        pass

    def close(self) -> None:
        pass


class Board(Quiet):
    """Event files in `folder`; `every`: the training loss every this many steps."""

    def __init__(self, folder: Path, every: int):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise UserError(f"log.tensorboard: needs the tensorboard extra: {EXTRA_HINT}") \
                from None
        self.every = every
        self.writer = SummaryWriter(str(folder))

    def _safely(self, what: str, fn) -> None:
        if self.writer is None:
            return
        try:
            fn()
        except Exception as e:  # noqa: BLE001  TensorBoard never stops a run
            log.warning("tensorboard: %s not written (%s); no more events", what, e)
            self.writer = None

    def step(self, step: int, loss: float) -> None:
        if step % self.every == 0:
            self._safely("loss", lambda: self.writer.add_scalar("train/step_loss", loss, step))

    def epoch(self, row: dict) -> None:
        def write():
            for key, tag in SCALARS.items():
                if row.get(key) is not None:
                    self.writer.add_scalar(tag, row[key], row["epoch"])
            self.writer.flush()
        self._safely("epoch scalars", write)

    def embeddings(self, emb: np.ndarray, labels: list, images: np.ndarray) -> None:
        """emb (N, E), labels (N,), images uint8 (N, H, W, C) for the sprite."""
        def write():
            sprite = images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
            if sprite.shape[1] == 1:
                sprite = np.repeat(sprite, 3, axis=1)
            self.writer.add_embedding(emb, metadata=list(labels), label_img=sprite,
                                      tag="validation")
            self.writer.flush()
        self._safely("embeddings", write)

    def close(self) -> None:
        self._safely("close", self.writer.close) if self.writer is not None else None


def open_board(enabled: bool, folder: Path, every: int) -> Quiet:
    """A Board when `log.tensorboard` is on (UserError naming the extra when it is missing),
    else Quiet."""
    return Board(folder, every) if enabled else Quiet()
