"""The images training draws from: the training split, and, with `data.rotate_classes`, its
rotated (and mirrored) copies as new classes.

Rotation classes (Snell et al. 2017 trained Omniglot this way): every training class c gets,
for each angle in `data.rotate_classes` (multiples of 90 degrees) and, with
`data.mirror_classes`, for its mirror image and the mirror's rotations, a new class of its own
label. They are made after the split, from training images only, so a rotated class is always
on its source's side of the split: no validation or test class has a rotated copy in training.
Nothing is decoded or stored twice: an example is (image, turn), turned when its batch is
gathered. A rotated class has its source's group (data.groups).

What it does not do: know that a rotation can turn one class into another (6 and 9 on digits,
b and q, n and u). The rotated 6 becomes a class of its own, told apart from 9 by the loss,
although the two look alike; see docs/config.md for what that costs, measured on the digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..errors import UserError
from .sampling import PairSampler
from .turns import turned


@dataclass
class TrainSet:
    """Training examples: rows of `index` (image indices), with their labels and turns.

    Attributes:
        index: (M,) image index (into the run's images) of each example image.
        labels: (M,) class label; a rotated class has label source + C * variant.
        turns: (M,) quarter turns anticlockwise (0-3), + 4 when mirrored first.
        groups: (labels.max() + 1,) group id of each label, or None (no data.groups).
        group_share: share of P x K batches whose classes come from one group.
        classes: how many labels there are (C times the variants).
    """

    index: np.ndarray
    labels: np.ndarray
    turns: np.ndarray
    groups: Optional[np.ndarray] = None
    group_share: float = 0.0
    classes: int = 0

    def sampler(self) -> PairSampler:
        groups = None if self.groups is None else self.groups[self.labels]
        return PairSampler(self.labels, "train", groups, self.group_share)

    def take(self, images, rows: np.ndarray) -> np.ndarray:
        """uint8 (len(rows), H, W, C) images of example rows, turned as they say."""
        rows = np.asarray(rows).reshape(-1)
        raw = images[self.index[rows]]
        turns = self.turns[rows]
        if not turns.any():
            return raw
        raw = np.array(raw)  # a copy of our own to turn in place
        for t in np.unique(turns[turns > 0]):
            pick = turns == t
            raw[pick] = turned(raw[pick], int(t))
        return raw


def variants(angles: List[int], mirror: bool) -> List[int]:
    """The turns of the new classes: each angle's quarter turns, then (mirror) the mirror
    image and its turns. UserError naming data.rotate_classes for other angles."""
    turns = []
    for a in angles:
        if a % 90 or not 0 < a < 360:
            raise UserError(f"data.rotate_classes: angles are 90, 180 or 270 (degrees), got {a}")
        turns.append(a // 90)
    if len(set(turns)) != len(turns):
        raise UserError(f"data.rotate_classes: an angle is listed twice: {angles}")
    return turns + ([4] + [4 + t for t in turns] if mirror else [])


def train_set(labels: np.ndarray, index: np.ndarray, n_classes: int, d,
              groups: Optional[np.ndarray] = None, image_size=None) -> TrainSet:
    """The training examples of `index` (image indices, `labels` the class of every image),
    with the rotation classes of `d` (the data config section) added."""
    turns = variants(list(d.rotate_classes), d.mirror_classes)
    if turns and image_size is not None and image_size[0] != image_size[1] and \
            any(t % 2 for t in turns):
        raise UserError(f"data.rotate_classes: a quarter turn needs square images, "
                        f"data.image_size is {list(image_size)}")
    base = labels[index]
    all_index = np.concatenate([index] * (len(turns) + 1))
    all_labels = np.concatenate([base + n_classes * v for v in range(len(turns) + 1)])
    all_turns = np.concatenate([np.zeros(len(index), np.int64)] +
                               [np.full(len(index), t, np.int64) for t in turns])
    total = n_classes * (len(turns) + 1)
    label_groups = None if groups is None else np.tile(groups, len(turns) + 1)
    return TrainSet(all_index, all_labels.astype(np.int64), all_turns, label_groups,
                    float(getattr(d, "group_batches", 0.0)), total)
