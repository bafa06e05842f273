"""Image folders, seeded splits, pair sampling and pair files (numpy only).

A pair is a row `(i, j, label)` of image indices with label 1 = same class, 0 = different.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .errors import UserError
from .images import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)


@dataclass
class ImageFolder:
    """The images of a class-per-sub-folder tree.

    Attributes:
        root: the folder.
        paths: image paths relative to root, sorted by class then file name.
        labels: int array (N,), index into `classes`.
        classes: sub-folder names, sorted.
        images: uint8 (N, H, W, C) decoded images once loaded (see siamese.data), else None.
    """

    root: Path
    paths: List[str]
    labels: np.ndarray
    classes: List[str]
    images: Optional[np.ndarray] = None


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def scan_folder(root: str | Path, flat: bool = False) -> ImageFolder:
    """List the images under `root/<class>/`; hidden and non-image files are ignored.

    flat: a folder with no class sub-folders but images directly in it is one class "."
        (unlabelled images, for reconstruction-only training).
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data.root: no such folder: {root}")
    classes, paths, labels = [], [], []
    for cdir in sorted(p for p in root.iterdir() if p.is_dir() and _visible(p)):
        files = sorted(
            f for f in cdir.iterdir()
            if f.is_file() and _visible(f) and f.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            log.warning("%s: class folder holds no images, ignored", cdir)
            continue
        label = len(classes)
        classes.append(cdir.name)
        paths += [f"{cdir.name}/{f.name}" for f in files]
        labels += [label] * len(files)
    if not classes and flat:
        files = sorted(f.name for f in root.iterdir() if f.is_file() and _visible(f)
                       and f.suffix.lower() in IMAGE_EXTENSIONS)
        if files:
            return ImageFolder(root, files, np.zeros(len(files), np.int64), ["."])
    if not classes:
        raise UserError(f"data.root: {root}: no class sub-folders with images in them")
    return ImageFolder(root, paths, np.asarray(labels, dtype=np.int64), classes)


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


class PairSampler:
    """Balanced random pairs over a set of labelled images; never an image with itself.

    Args:
        labels: (N,) class of each image in the set (indices returned refer to this set).
        name: the set's name, for error messages.
    """

    def __init__(self, labels: np.ndarray, name: str):
        self.labels = np.asarray(labels)
        self.order = np.argsort(self.labels, kind="stable")  # images grouped by class
        classes, self.start, self.count = np.unique(
            self.labels[self.order], return_index=True, return_counts=True
        )
        self.cls = np.searchsorted(classes, self.labels)  # dense class id per image
        self.rank = np.empty(len(self.labels), np.int64)  # position of an image in its class
        self.rank[self.order] = np.arange(len(self.labels)) - self.start[self.cls[self.order]]
        self.pos_anchor = np.flatnonzero(self.count[self.cls] >= 2)
        if len(self.pos_anchor) == 0:
            raise UserError(
                f"data: the {name} split has no class with 2 or more images, so no same pairs; "
                f"add images or change data.split / data.*_fraction"
            )
        if len(classes) < 2:
            raise UserError(
                f"data: the {name} split has only one class, so no different pairs; "
                f"add classes or change data.split / data.*_fraction"
            )
        self.n_pos = int((self.count * (self.count - 1) // 2).sum())
        self.n_neg = int((len(self.labels) ** 2 - (self.count ** 2).sum()) // 2)

    def _positives(self, n: int, rng: np.random.Generator) -> np.ndarray:
        i = rng.choice(self.pos_anchor, n)
        c, m = self.cls[i], self.count[self.cls[i]]
        k = (rng.random(n) * (m - 1)).astype(np.int64)
        k += k >= self.rank[i]  # skip the anchor itself
        return np.stack([i, self.order[self.start[c] + k], np.ones(n, np.int64)], 1)

    def _negatives(self, n: int, rng: np.random.Generator) -> np.ndarray:
        i = rng.integers(0, len(self.labels), n)
        c, m = self.cls[i], self.count[self.cls[i]]
        r = (rng.random(n) * (len(self.labels) - m)).astype(np.int64)
        r += np.where(r >= self.start[c], m, 0)  # skip the anchor's class block
        return np.stack([i, self.order[r], np.zeros(n, np.int64)], 1)

    def triplets(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n random triplets (anchor, positive, negative): int64 array (n, 3).

        The positive is another image of the anchor's class, the negative any image of
        another class.
        """
        a, p, _ = self._positives(n, rng).T
        c, m = self.cls[a], self.count[self.cls[a]]
        r = (rng.random(n) * (len(self.labels) - m)).astype(np.int64)
        r += np.where(r >= self.start[c], m, 0)  # skip the anchor's class block
        return np.stack([a, p, self.order[r]], 1)

    def pk_batch(self, p: int, k: int, rng: np.random.Generator) -> np.ndarray:
        """A batch of `p` classes x `k` images, class by class: int64 array (p * k,).

        Only classes with 2 or more images are drawn (one image has no positive). A class with
        fewer than k images gives all of them, then repeats drawn at random.
        """
        usable = np.flatnonzero(self.count >= 2)
        out = []
        for c in rng.choice(usable, p, replace=False):
            members = self.order[self.start[c]:self.start[c] + self.count[c]]
            if len(members) >= k:
                out.append(rng.choice(members, k, replace=False))
            else:
                extra = rng.choice(members, k - len(members), replace=True)
                out.append(np.concatenate([rng.permutation(members), extra]))
        return np.concatenate(out)

    def sample(self, n: int, rng: np.random.Generator, unique: bool = False) -> np.ndarray:
        """n pairs (n // 2 same, the rest different), shuffled: int64 array (n, 3).

        With `unique`, no unordered pair repeats; when fewer exist than asked, all are used.
        """
        halves = []
        for fn, want, avail in ((self._positives, n // 2, self.n_pos),
                                (self._negatives, n - n // 2, self.n_neg)):
            if not unique:
                halves.append(fn(want, rng))
                continue
            want = min(want, avail)
            got = np.empty((0, 3), np.int64)
            for _ in range(50):
                got = np.concatenate([got, fn(2 * want + 16, rng)])
                key = np.sort(got[:, :2], 1)
                _, first = np.unique(key, axis=0, return_index=True)
                got = got[np.sort(first)]
                if len(got) >= want:
                    break
            halves.append(got[:want])
        pairs = np.concatenate(halves)
        return pairs[rng.permutation(len(pairs))]


def write_pairs_csv(path: Path, paths: List[str], pairs: np.ndarray) -> None:
    """Write `left,right,label` with paths relative to the data root."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["left", "right", "label"])
        for i, j, y in pairs:
            w.writerow([paths[i], paths[j], int(y)])



def write_split_csv(path: Path, data) -> None:
    """Write `path,class,split,labeled` for every usable image of a run (PairData); labeled is
    1 for training images pairs are drawn from (data.labeled_per_class), else 0."""
    where = np.empty(len(data.folder.paths), dtype=object)
    for name in ("train_all", "val", "test"):
        where[data.splits.get(name, data.splits["train"])] = name.replace("_all", "")
    labeled = np.zeros(len(where), np.int64)
    labeled[data.splits["train"]] = 1
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "class", "split", "labeled"])
        for p, c, s, lab in zip(data.folder.paths, data.folder.labels, where, labeled):
            w.writerow([p, data.folder.classes[c], s, lab])


def read_train_classes(path: Path) -> set:
    """The classes with an image in the training split, from a run's pairs/split.csv."""
    try:
        with open(path, newline="") as fh:
            return {row["class"] for row in csv.DictReader(fh) if row["split"] == "train"}
    except (OSError, KeyError, csv.Error) as e:
        raise UserError(f"{path}: cannot read the run's split ({e})") from None
