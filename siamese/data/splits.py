"""Seeded splits of a folder's images into train / val / test, and the labelled subset."""

from __future__ import annotations

from typing import Dict

import numpy as np

from ..errors import UserError


def split_indices(
    labels: np.ndarray, mode: str, val_fraction: float, test_fraction: float, seed: int
) -> Dict[str, np.ndarray]:
    """Seeded split of image indices into train / val / test.

    Args:
        labels: (N,) class of each image.
        mode: "image" (each class's images are divided; classes are shared) or "class"
            (classes are divided; val and test classes never appear in training).
        val_fraction, test_fraction: shares in (0, 1), of images per class or of classes.
    Returns:
        {"train", "val", "test"}: sorted index arrays, disjoint.
    """
    rng = np.random.default_rng([seed, 1])
    parts: Dict[str, list] = {"train": [], "val": [], "test": []}
    if mode == "class":
        classes = rng.permutation(np.unique(labels))
        n_val = max(2, round(len(classes) * val_fraction))
        n_test = max(2, round(len(classes) * test_fraction))
        if len(classes) - n_val - n_test < 2:
            raise UserError(
                f"data.split: 'class' needs at least 6 classes (2 each for train, val and test); "
                f"found {len(classes)}"
            )
        groups = {"val": classes[:n_val], "test": classes[n_val:n_val + n_test],
                  "train": classes[n_val + n_test:]}
        for name, cls in groups.items():
            parts[name] = np.flatnonzero(np.isin(labels, cls))
    else:
        for c in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == c))
            m = len(idx)
            n_val, n_test = round(m * val_fraction), round(m * test_fraction)
            # A single val/test image of a class can form no same pair: give it two when the
            # class can spare them, keeping two for training.
            n_val = 2 if n_val == 1 and m >= 6 else n_val
            n_test = 2 if n_test == 1 and m >= 6 else n_test
            while m - n_val - n_test < min(2, m) and (n_val or n_test):
                n_test, n_val = (n_test - 1, n_val) if n_test >= n_val else (n_test, n_val - 1)
            parts["val"].append(idx[:n_val])
            parts["test"].append(idx[n_val:n_val + n_test])
            parts["train"].append(idx[n_val + n_test:])
        parts = {k: np.concatenate(v) for k, v in parts.items()}
    return {k: np.sort(np.asarray(v, dtype=np.int64)) for k, v in parts.items()}


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
