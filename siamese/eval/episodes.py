"""Fixed one-shot episodes: Lake's Omniglot run folders and a CSV format for your own.

Lake's runs (`runNN/class_labels.txt`, `runNN/training/`, `runNN/test/`): each line of
class_labels.txt is `runNN/test/itemKK.png runNN/training/classJJ.png`, a query and the one
support image of its class; the supports of a run are its `training/` images. A folder holding
`runNN` folders is every run in it.

CSV (your own fixed benchmark), header `episode,role,path,label`:

    episode,role,path,label
    e1,support,cats/a.png,cat
    e1,support,dogs/b.png,dog
    e1,query,cats/c.png,cat

`role` is `support` or `query`; `path` is relative to `--root` (default: the CSV's folder);
`label` names the class. Each query is assigned the label of its most similar support image of
the same episode (nearest neighbour under the model's score); it must be one of them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..data.pairfiles import is_file, outside
from ..errors import UserError
from .metrics import wilson_interval


@dataclass
class Episode:
    """One fixed episode: support and query image paths (relative to a root) with labels."""

    name: str
    support: List[str] = field(default_factory=list)
    support_labels: List[str] = field(default_factory=list)
    query: List[str] = field(default_factory=list)
    query_labels: List[str] = field(default_factory=list)


def _lake_run(run: Path) -> Episode:
    """One of Lake's run folders; paths relative to its parent folder."""
    labels = run / "class_labels.txt"
    ep = Episode(run.name)
    ep.support = sorted(f"{run.name}/training/{p.name}" for p in (run / "training").glob("*.png"))
    ep.support_labels = list(ep.support)  # each support image is its own class
    try:
        text = labels.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{labels}: cannot read ({e})") from None
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not all(p.startswith(f"{run.name}/") for p in parts):
            raise UserError(f"{labels}: line {n}: expected '{run.name}/test/ITEM.png "
                            f"{run.name}/training/CLASS.png', got {line.strip()!r}")
        if parts[1] not in ep.support:
            raise UserError(f"{labels}: line {n}: {parts[1]} is not one of the run's "
                            f"training images")
        ep.query.append(parts[0])
        ep.query_labels.append(parts[1])
    if not ep.query:
        raise UserError(f"{labels}: holds no test items")
    return ep


def _csv(path: Path) -> List[Episode]:
    try:
        rows = list(csv.reader(io.StringIO(path.read_text())))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{path}: cannot read episode file ({e})") from None
    if not rows or [h.strip().lower() for h in rows[0]] != ["episode", "role", "path", "label"]:
        raise UserError(f"{path}: line 1: expected the header episode,role,path,label")
    episodes: Dict[str, Episode] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not "".join(row).strip():
            continue
        if len(row) != 4 or not all(c.strip() for c in row):
            raise UserError(f"{path}: line {n}: expected 4 non-empty fields "
                            f"episode,role,path,label, got {row}")
        name, role, image, label = (c.strip() for c in row)
        if role not in ("support", "query"):
            raise UserError(f"{path}: line {n}: role must be support or query, got {role!r}")
        ep = episodes.setdefault(name, Episode(name))
        getattr(ep, role).append(image)
        getattr(ep, f"{role}_labels").append(label)
    for ep in episodes.values():
        if not ep.query or len(set(ep.support_labels)) < 2:
            raise UserError(f"{path}: episode {ep.name}: needs queries and supports of at "
                            f"least 2 classes")
        missing = sorted(set(ep.query_labels) - set(ep.support_labels))
        if missing:
            raise UserError(f"{path}: episode {ep.name}: query class {missing[0]!r} has no "
                            f"support image")
    if not episodes:
        raise UserError(f"{path}: holds no episodes")
    return list(episodes.values())


def read_episodes(path: Path, root: Optional[Path] = None,
                  allow_outside: bool = False) -> Tuple[List[Episode], Path]:
    """(episodes, the root their paths are relative to) of a run folder, a folder of run
    folders, or a CSV episode file; every image checked to exist.

    Raises:
        UserError: naming the file and line of the first problem.
    """
    path = Path(path)
    if path.is_dir() and (path / "class_labels.txt").is_file():
        episodes, root = [_lake_run(path)], path.parent
    elif path.is_dir():
        runs = sorted(p for p in path.iterdir() if (p / "class_labels.txt").is_file())
        if not runs:
            raise UserError(f"{path}: no run folders (runNN/class_labels.txt) in it")
        episodes, root = [_lake_run(r) for r in runs], path
    elif path.is_file():
        episodes, root = _csv(path), Path(root) if root is not None else path.parent
    else:
        raise UserError(f"--episode-file: no such file or folder: {path}")
    for ep in episodes:
        for image in ep.support + ep.query:
            if not allow_outside and outside(image):
                raise UserError(f"{path}: episode {ep.name}: {image} is outside the root "
                                f"{root}; pass --allow-outside-root to read it anyway")
            if not is_file(root / image):
                raise UserError(f"{path}: episode {ep.name}: no such image {root / image}")
    return episodes, root


def score_episodes(episodes: List[Episode], index: Dict[str, int],
                   scores: Callable[[np.ndarray, np.ndarray], np.ndarray],
                   higher_is_similar: bool) -> dict:
    """Nearest-support accuracy of every episode, their mean, the error rate and a 95%
    interval (Wilson, over all queries).

    Args:
        index: image path -> row for `scores`.
        scores: (query rows, support rows) -> scores (n,), the query on the left.
    """
    per, right, total = [], 0, 0
    for ep in episodes:
        q = np.array([index[p] for p in ep.query])
        s = np.array([index[p] for p in ep.support])
        m = np.asarray(scores(np.repeat(q, len(s)), np.tile(s, len(q)))).reshape(len(q), len(s))
        best = m.argmax(axis=1) if higher_is_similar else m.argmin(axis=1)
        guess = np.asarray(ep.support_labels)[best]
        correct = int((guess == np.asarray(ep.query_labels)).sum())
        per.append({"episode": ep.name, "accuracy": correct / len(q), "queries": len(q),
                    "ways": len(set(ep.support_labels))})
        right, total = right + correct, total + len(q)
    accs = [p["accuracy"] for p in per]
    lo, hi = wilson_interval(right, total)
    return {"mean_accuracy": float(np.mean(accs)), "std_accuracy": float(np.std(accs)),
            "error_rate": 1.0 - right / total, "pooled_accuracy": right / total,
            "ci95": [lo, hi], "episodes": len(per), "queries": total, "per_episode": per}
