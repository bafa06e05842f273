"""Groups of classes: the alphabet of an Omniglot character, the family of a product, the
site of a camera. A group is what a split can hold out whole (`data.split: group`), what an
episode's classes can all come from (`eval.py --within-group`, `train.select: nway:N`) and
what a P x K batch's classes can share (`data.group_batches`).

`data.groups` says where a class's group comes from:

- `none`: no groups (the default).
- `name`: the class folder's name up to its last underscore: `Greek_character07` is in group
  `Greek`, `Japanese_(katakana)_character01` in `Japanese_(katakana)`; a name without an
  underscore is its own group.
- `csv`: a file `groups.csv` beside the class folders (for a pack `NAME.rec`, in its folder),
  header `class,group`, one line per class folder; every class must be listed.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ..errors import UserError

GROUP_RULES = ("none", "name", "csv")
GROUPS_FILE = "groups.csv"


def group_of_name(name: str) -> str:
    """`Greek_character07` -> `Greek`; a name without an underscore is its own group."""
    head, sep, _ = name.rpartition("_")
    return head if sep and head else name


def groups_file(root: str | Path) -> Path:
    """Where `data.groups: csv` reads: root/groups.csv, or beside a pack's .rec file."""
    root = Path(root)
    return (root.parent if root.suffix == ".rec" else root) / GROUPS_FILE


def read_groups_csv(path: Path, classes: List[str]) -> List[str]:
    """The group of each class from a `class,group` CSV; UserError naming the file and line."""
    try:
        rows = list(csv.reader(io.StringIO(path.read_text())))
    except FileNotFoundError:
        raise UserError(f"data.groups: csv reads {path}, which does not exist (a header "
                        f"class,group and one line per class folder)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    if not rows or [h.strip().lower() for h in rows[0]] != ["class", "group"]:
        raise UserError(f"{path}: line 1: expected the header class,group")
    found = {}
    for n, row in enumerate(rows[1:], start=2):
        if not "".join(row).strip():
            continue
        if len(row) != 2 or not all(c.strip() for c in row):
            raise UserError(f"{path}: line {n}: expected 2 non-empty fields class,group, "
                            f"got {row}")
        name, group = (c.strip() for c in row)
        if name in found and found[name] != group:
            raise UserError(f"{path}: line {n}: class {name!r} listed twice with other groups")
        found[name] = group
    missing = [c for c in classes if c not in found]
    if missing:
        raise UserError(f"{path}: class {missing[0]!r} has no group"
                        f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}")
    return [found[c] for c in classes]


def class_groups(rule: str, root: str | Path, classes: List[str]
                 ) -> Tuple[Optional[np.ndarray], List[str]]:
    """(group id of each class (C,), group names) under `data.groups`; (None, []) for none."""
    if rule == "none":
        return None, []
    if rule == "name":
        names = [group_of_name(c) for c in classes]
    elif rule == "csv":
        names = read_groups_csv(groups_file(root), classes)
    else:
        raise UserError(f"data.groups: expected one of {', '.join(GROUP_RULES)}, got {rule!r}")
    uniq = sorted(set(names))
    return np.array([uniq.index(n) for n in names], np.int64), uniq
