"""The run's fixed pair sets on disk: pairs/val.csv and test.csv (`left,right,label`, paths
relative to data.root), pairs/split.csv (`path,class,split,labeled` of every usable image) and
pairs/digests.csv (`path,digest`: a fingerprint of every image's decoded pixels).
Reading users' own pair lists is siamese.data.pairfiles."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..errors import UserError


def write_pairs_csv(path: Path, paths: List[str], pairs: np.ndarray) -> None:
    """Write `left,right,label` with paths relative to the data root."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["left", "right", "label"])
        for i, j, y in pairs:
            w.writerow([paths[i], paths[j], int(y)])


def write_split_csv(path: Path, paths: List[str], labels: np.ndarray, classes: List[str],
                    splits: Dict[str, np.ndarray]) -> None:
    """Write `path,class,split,labeled` for every usable image of a run; labeled is 1 for the
    training images pairs are drawn from (data.labeled_per_class), else 0.

    Args:
        splits: "train_all" (every training image), "train" (the labelled ones), "val",
            "test" -> image indices.
    """
    where = np.empty(len(paths), dtype=object)
    for name in ("train_all", "val", "test"):
        where[splits.get(name, splits["train"])] = name.replace("_all", "")
    labeled = np.zeros(len(where), np.int64)
    labeled[splits["train"]] = 1
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "class", "split", "labeled"])
        for p, c, s, lab in zip(paths, labels, where, labeled):
            w.writerow([p, classes[c], s, lab])


def read_split_classes(path: Path) -> Dict[str, set]:
    """{"train", "val", "test"}: the classes with an image in each split, from a run's
    pairs/split.csv."""
    out: Dict[str, set] = {"train": set(), "val": set(), "test": set()}
    for row in _rows(path, ("class", "split"), "the run's split"):
        out.setdefault(row["split"], set()).add(row["class"])
    return out


def _rows(path: Path, need: tuple, what: str) -> List[dict]:
    """The rows of a CSV file with a header, each with the fields `need` present; a short row,
    bytes that are not UTF-8 (found by fuzzing: UnicodeDecodeError escaped) or a missing column
    is a UserError naming the file and line."""
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = []
            for row in reader:
                if any(row.get(k) is None for k in need):
                    raise UserError(f"{path}: line {reader.line_num}: expected the fields "
                                    f"{', '.join(need)}; {what} is damaged")
                rows.append(row)
    except (OSError, csv.Error, ValueError) as e:
        raise UserError(f"{path}: cannot read {what} ({e})") from None
    return rows


def image_digests(images: np.ndarray) -> List[str]:
    """A fingerprint per decoded image (uint8 (N, H, W, C)): the first 16 hex digits of the
    sha256 of its pixels. A file whose pixels change gets another; a copied folder does not."""
    return [hashlib.sha256(np.ascontiguousarray(im).tobytes()).hexdigest()[:16]
            for im in images]


def write_digests(path: Path, paths: List[str], digests: List[str]) -> None:
    """Write pairs/digests.csv: `path,digest` of every image a run uses."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "digest"])
        w.writerows(zip(paths, digests))


def read_digests(path: Path) -> Dict[str, str]:
    """{path: digest} from pairs/digests.csv; {} for a run written before digests existed."""
    if not path.is_file():
        return {}
    return {row["path"]: row["digest"]
            for row in _rows(path, ("path", "digest"), "the run's image fingerprints")}


def first_change(saved: Dict[str, str], now: Dict[str, str]) -> Optional[str]:
    """The first path (in sorted order) whose fingerprint differs, or that one side lacks."""
    for name in sorted(set(saved) | set(now)):
        if saved.get(name) != now.get(name):
            return name
    return None
