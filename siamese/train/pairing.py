"""Which training batches go with which loss: chosen once, from one registry.

`(loss.name, data.sampler)` -> the batch source (siamese.data.loaders.SOURCES) and the loss
entry (siamese.losses.registry.LOSSES); the architecture may swap the loss entry for its own
(a two-channel network trains its own logit). Config rules (siamese.config.rules) have already
refused the combinations that make no sense, with a message naming the keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, Tuple

from ..errors import UserError


@dataclass(frozen=True)
class Pairing:
    """source: a SOURCES name; loss: a LOSSES entry; labelled: False for reconstruction-only
    training (loss.name: none), which needs no labels and may have no pairs at all."""

    source: str
    loss: str
    labelled: bool = True


PAIRINGS: Dict[Tuple[str, str], Pairing] = {
    ("contrastive", "pairs"): Pairing("pairs", "contrastive"),
    ("logistic", "pairs"): Pairing("pairs", "logistic"),
    ("triplet", "pairs"): Pairing("triplets", "triplet"),
    ("triplet", "pk"): Pairing("pk", "batch_triplet"),
    ("cosface", "pk"): Pairing("pk", "cosface"),
    ("nca", "pk"): Pairing("pk", "nca"),
    ("none", "pairs"): Pairing("none", "none", labelled=False),
}


def get_pairing(loss_name: str, sampler: str, architecture) -> Pairing:
    """The pairing of `loss.name` and `data.sampler` for an Architecture."""
    names = list(dict.fromkeys(name for name, _ in PAIRINGS))
    if loss_name not in names:
        raise UserError(f"loss.name: unknown loss {loss_name!r} (valid: {', '.join(names)})")
    if (loss_name, sampler) not in PAIRINGS:
        valid = ", ".join(s for n, s in PAIRINGS if n == loss_name)
        raise UserError(f"data.sampler: {sampler} does not go with loss.name: {loss_name} "
                        f"(valid: {valid})")
    pairing = PAIRINGS[(loss_name, sampler)]
    return dataclasses.replace(pairing, loss=architecture.loss_name(pairing.loss))
