"""Pair lists users bring: CSV `left,right,label` or LFW-style `pairs.txt`, told apart by content.

Both are validated up front, every problem reported with its file and line number: missing
images, labels other than 0/1, an LFW header that disagrees with the line count, duplicate rows
and self-pairs.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..errors import UserError
from .images import IMAGE_EXTENSIONS


@dataclass
class PairList:
    """Pairs of image paths relative to a root.

    Attributes:
        left, right: relative paths, one per pair.
        labels: int64 (n,), 1 = same, 0 = different.
        lines: the file line of each pair (1-based), for messages.
        folds: int64 (n,) fold of each pair for LFW files, else None.
        kind: "csv" or "lfw".
    """

    left: List[str]
    right: List[str]
    labels: np.ndarray
    lines: List[int]
    folds: Optional[np.ndarray]
    kind: str


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read pair list ({e})") from None


def _parse_csv(path: Path, text: str) -> PairList:
    rows = csv.reader(io.StringIO(text))
    try:
        return _csv_pairs(path, rows)
    except csv.Error as e:  # a field beyond csv's limit, a NUL...: found by fuzzing
        raise UserError(f"{path}: line {rows.line_num}: not CSV ({e})") from None


def _csv_pairs(path: Path, rows) -> PairList:
    header = [h.strip().lower() for h in next(rows)]
    if header != ["left", "right", "label"]:
        raise UserError(f"{path}: line 1: expected the header left,right,label, got {header}")
    left, right, labels, lines = [], [], [], []
    for n, row in enumerate(rows, start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 3:
            raise UserError(f"{path}: line {n}: expected 3 fields left,right,label, got {len(row)}")
        label = row[2].strip()
        if label not in ("0", "1"):
            raise UserError(f"{path}: line {n}: label must be 0 or 1, got {label!r}")
        left.append(row[0].strip())
        right.append(row[1].strip())
        labels.append(int(label))
        lines.append(n)
    return PairList(left, right, np.asarray(labels, np.int64), lines, None, "csv")


_HEADER = re.compile(r"^\s*(\d{1,9})\s+(\d{1,9})\s*$")  # (a 5000-digit count: fuzzing)


def is_file(path: Path) -> bool:
    """Path.is_file, False for a path the system refuses (a name too long: found by fuzzing,
    OSError escaped)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _class_files(root: Path, name: str, cache: Dict[str, List[str]]) -> List[str]:
    if name not in cache:
        folder = root / name
        try:
            cache[name] = sorted(
                f.name for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")
                and f.suffix.lower() in IMAGE_EXTENSIONS) if folder.is_dir() else []
        except OSError:  # a name too long, a folder that cannot be listed: no images
            cache[name] = []
    return cache[name]


def _lfw_image(path: Path, n: int, root: Path, name: str, index: str, cache,
               allow_outside: bool) -> str:
    if outside(name) and not allow_outside:
        raise UserError(f"{path}: line {n}: {name} is outside --root {root} (an absolute "
                        f"path or '..'); pass --allow-outside-root to read it anyway")
    # ASCII and at most 9 digits: "²" is a digit to str.isdigit, and int() refuses more than
    # 4300 digits (both found by fuzzing: ValueError escaped)
    if not (index.isascii() and index.isdigit() and len(index) <= 9) or int(index) < 1:
        raise UserError(f"{path}: line {n}: image number must be a positive integer, got {index!r}")
    files = _class_files(root, name, cache)
    if not files:
        raise UserError(f"{path}: line {n}: no image folder {root / name}")
    if int(index) > len(files):
        raise UserError(f"{path}: line {n}: {name} has {len(files)} images, no image {index}")
    return f"{name}/{files[int(index) - 1]}"


def _parse_lfw(path: Path, text: str, root: Path, allow_outside: bool = False) -> PairList:
    lines = text.splitlines()
    folds_n, per_fold = (int(v) for v in _HEADER.match(lines[0]).groups())
    body = [(n, line.split()) for n, line in enumerate(lines[1:], start=2) if line.strip()]
    expected = folds_n * 2 * per_fold
    if len(body) != expected:
        raise UserError(f"{path}: line 1: header says {folds_n} folds of {per_fold} same + "
                        f"{per_fold} different pairs ({expected} lines), the file has {len(body)}")
    left, right, labels, where, folds = [], [], [], [], []
    cache: Dict[str, List[str]] = {}
    for k, (n, f) in enumerate(body):
        same = (k % (2 * per_fold)) < per_fold  # each fold: matched lines, then mismatched
        if same and len(f) != 3:
            raise UserError(f"{path}: line {n}: a matched pair line is 'name i j', got {f}")
        if not same and len(f) != 4:
            raise UserError(f"{path}: line {n}: a mismatched pair line is 'name1 i name2 j', "
                            f"got {f}")
        a_name, a_i, b_name, b_i = (f[0], f[1], f[0], f[2]) if same else f
        left.append(_lfw_image(path, n, root, a_name, a_i, cache, allow_outside))
        right.append(_lfw_image(path, n, root, b_name, b_i, cache, allow_outside))
        labels.append(int(same))
        where.append(n)
        folds.append(k // (2 * per_fold))
    return PairList(left, right, np.asarray(labels, np.int64), where,
                    np.asarray(folds, np.int64), "lfw")


def outside(name: str) -> bool:
    """True when a relative `name` leaves the folder it is relative to: an absolute path, or
    `..` climbing out of it."""
    norm = os.path.normpath(name)
    return os.path.isabs(name) or norm == ".." or norm.startswith(".." + os.sep)


def _validate(path: Path, pairs: PairList, root: Path, allow_outside: bool) -> None:
    seen: Dict[tuple, int] = {}
    for a, b, n in zip(pairs.left, pairs.right, pairs.lines):
        for p in (a, b):
            if not allow_outside and outside(p):
                raise UserError(f"{path}: line {n}: {p} is outside --root {root} (an absolute "
                                f"path or '..'); pass --allow-outside-root to read it anyway")
        if a == b:
            raise UserError(f"{path}: line {n}: pairs an image with itself ({a})")
        key = (min(a, b), max(a, b))
        if key in seen:
            raise UserError(f"{path}: line {n}: duplicates the pair on line {seen[key]}")
        seen[key] = n
        for p in (a, b):
            if not is_file(root / p):
                raise UserError(f"{path}: line {n}: no such image {root / p}")
    if pairs.labels.all() or not pairs.labels.any():
        raise UserError(f"{path}: needs both same (1) and different (0) pairs to score")


def read_pair_file(path: str | Path, root: str | Path, allow_outside: bool = False) -> PairList:
    """Read and validate a CSV or LFW pair list; the format is detected from the first line.

    Args:
        path: the pair file.
        root: the folder its image paths (CSV) or class names (LFW) refer to.
        allow_outside: accept paths that leave `root` (absolute, or with `..`); refused by
            default, so a pair file cannot make the tool read files elsewhere.
    Raises:
        UserError: naming the file and line of the first problem.
    """
    path, root = Path(path), Path(root)
    if root.suffix == ".rec":
        raise UserError(f"--root: {root} is a pack; eval.py reads image files: give --root the "
                        f"folder the pack was made from (docs/data.md)")
    if not root.is_dir():
        raise UserError(f"--root: no such folder: {root}")
    text = _read_text(path)
    first = text.splitlines()[0] if text.strip() else ""
    if _HEADER.match(first):
        pairs = _parse_lfw(path, text, root, allow_outside)
    elif first.replace(" ", "").lower().startswith("left,right,label"):
        pairs = _parse_csv(path, text)
    else:
        raise UserError(f"{path}: line 1: neither a CSV header 'left,right,label' nor an LFW "
                        f"header 'folds pairs_per_fold'")
    if not len(pairs.labels):
        raise UserError(f"{path}: holds no pairs")
    _validate(path, pairs, root, allow_outside)
    return pairs
