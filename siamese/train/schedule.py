"""Learning-rate schedules: a factor in [0, 1] of the peak rate at a point of training."""

from __future__ import annotations

import math
from typing import Callable, Dict

from ..errors import UserError


def constant(progress: float) -> float:
    return 1.0


def cosine(progress: float) -> float:
    """Half a cosine from 1 at the start to 0 at the end."""
    return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def step(progress: float) -> float:
    """x0.1 at 50% and again at 75% of training."""
    return 1.0 if progress < 0.5 else 0.1 if progress < 0.75 else 0.01


SCHEDULES: Dict[str, Callable[[float], float]] = {"constant": constant, "cosine": cosine,
                                                  "step": step}


def get_schedule(name: str, epochs: int, warmup_epochs: float) -> Callable[[float], float]:
    """A function of the training position in epochs (float) -> learning-rate factor.

    Raises:
        UserError: unknown `train.schedule`; the message lists the valid names.
    """
    if name not in SCHEDULES:
        raise UserError(f"train.schedule: unknown {name!r} (valid: {', '.join(SCHEDULES)})")
    shape = SCHEDULES[name]

    def factor(epoch_pos: float) -> float:
        warm = min(1.0, epoch_pos / warmup_epochs) if warmup_epochs > 0 else 1.0
        return warm * shape(epoch_pos / epochs)

    return factor
