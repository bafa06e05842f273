"""Where the training loop is (saved in every checkpoint), and what it does with a batch whose
loss or gradient is not finite (`train.nonfinite`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..errors import TrainingError
from .engine import Parts

log = logging.getLogger(__name__)


@dataclass
class State:
    """Where the loop is; saved in every checkpoint."""

    epoch: int = 0  # completed epochs
    batch: int = 0  # completed batches of the current epoch (a mid-epoch checkpoint)
    loss_sum: float = 0.0  # summed loss over those batches
    parts_sum: dict = field(default_factory=dict)  # similarity / reconstruction sums
    best: dict = field(default_factory=lambda: {"epoch": 0, "auc": -1.0, "eer": 1.0,
                                                "reconstruction": float("inf")})
    train_seconds: float = 0.0
    skipped: int = 0  # non-finite batches skipped so far
    stopped_early: bool = False  # train.patience epochs passed without a better val AUC


class StopOnNonFinite:
    """train.nonfinite: stop. The step is not applied; the run stops (exit 1)."""

    def __init__(self, limit: int):
        pass

    def before(self, parts: Parts) -> None:
        pass

    def handle(self, parts: Parts, state: State, where: str, err: Exception) -> None:
        raise TrainingError(f"{where}: {err}; the step was not applied and the last "
                            f"checkpoint is kept (train.nonfinite: skip would skip such batches)")


class SkipNonFinite:
    """train.nonfinite: skip. Skip up to `limit` batches; BatchNorm running statistics, which
    the bad batch's forward pass already changed, are put back."""

    def __init__(self, limit: int):
        self.limit = limit
        self.saved: list = []

    def before(self, parts: Parts) -> None:
        aux = [p for b in parts.blocks.values() for p in b.collect_params().values()
               if p.grad_req == "null"]
        self.saved = [(p, [p.data(c).copy() for c in p.list_ctx()]) for p in aux]

    def handle(self, parts: Parts, state: State, where: str, err: Exception) -> None:
        state.skipped += 1
        if state.skipped > self.limit:
            raise TrainingError(f"{where}: {err}; more than train.max_skipped_batches="
                                f"{self.limit} non-finite batches, stopping")
        for p, copies in self.saved:
            for c, value in zip(p.list_ctx(), copies):
                value.copyto(p.data(c))
        log.warning("%s: %s; batch skipped (%d of at most %d)", where, err, state.skipped,
                    self.limit)


NONFINITE = {"stop": StopOnNonFinite, "skip": SkipNonFinite}
