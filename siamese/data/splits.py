"""Seeded splits of a folder's images into train / val / test, and the labelled subset."""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from ..errors import UserError


def split_indices(
    labels: np.ndarray, mode: str, val_fraction: float, test_fraction: float, seed: int,
    groups: Optional[np.ndarray] = None,
) -> Dict[str, np.ndarray]:
    """Seeded split of image indices into train / val / test.

    Args:
        labels: (N,) class of each image.
        mode: "image" (each class's images are divided; classes are shared), "class"
            (classes are divided; val and test classes never appear in training) or "group"
            (whole groups of classes are divided: val and test classes come from groups
            training never saw).
        val_fraction, test_fraction: shares in (0, 1), of images per class or of classes.
        groups: mode "group": the group of each class (indexed by label).
    Returns:
        {"train", "val", "test"}: sorted index arrays, disjoint.
    """
    rng = np.random.default_rng([seed, 1])
    parts: Dict[str, list] = {"train": [], "val": [], "test": []}
    if mode == "group":
        return group_split(labels, groups, val_fraction, test_fraction, rng)
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


def group_split(labels: np.ndarray, groups: Optional[np.ndarray], val_fraction: float,
                test_fraction: float, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """data.split: group. Groups in a seeded order go to validation until it holds at least
    val_fraction of the classes (at least one group), then to test likewise (one group at
    least, none when test_fraction is 0), the rest to training (one group at least)."""
    if groups is None:
        raise UserError("data.split: group needs groups of classes; set data.groups: name or "
                        "csv")
    present = np.unique(labels)
    order = rng.permutation(np.unique(groups[present]))
    sizes = {g: int(np.isin(present, np.flatnonzero(groups == g)).sum()) for g in order}
    taken: Dict[str, list] = {"val": [], "test": []}
    pos = 0
    for name, fraction in (("val", val_fraction), ("test", test_fraction)):
        want = round(len(present) * fraction)
        while pos < len(order) and (fraction > 0 and not taken[name]
                                    or sum(sizes[g] for g in taken[name]) < want):
            taken[name].append(order[pos])
            pos += 1
    if pos >= len(order):
        raise UserError(f"data.split: group: {len(order)} group(s) of classes cannot give "
                        f"validation, test and training groups at val_fraction "
                        f"{val_fraction} and test_fraction {test_fraction}")
    group_of_image = groups[labels]
    out = {k: np.flatnonzero(np.isin(group_of_image, v)) for k, v in taken.items()}
    out["train"] = np.flatnonzero(~np.isin(group_of_image, taken["val"] + taken["test"]))
    return {k: np.sort(v.astype(np.int64)) for k, v in out.items()}


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
