"""Within-group N-way episodes for eval.py (`--within-group`): every episode's classes come
from one group of classes (data.groups: an Omniglot character's alphabet, a product family),
as Lake's Omniglot runs do; the report keeps the mixed figure beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..config import read_yaml
from ..data.groups import class_groups
from ..errors import UserError
from ..formats.rundir import RunDir


def group_rule(run_dir: Optional[Path], asked: Optional[str]) -> Optional[str]:
    """The data.groups rule of `--within-group`: None (not asked), the one given (name, csv),
    or for "run" the run's own data.groups (UserError when it has none)."""
    if asked is None or asked != "run":
        return asked
    rule = "none"
    if run_dir is not None:
        rule = read_yaml(RunDir(run_dir).config).get("data", {}).get("groups", "none")
    if rule == "none":
        raise UserError("--within-group: the target has no data.groups; name the rule: "
                        "--within-group name (a class folder's name up to its last "
                        "underscore) or --within-group csv (groups.csv beside the class "
                        "folders)")
    return rule


def image_groups(rule: Optional[str], root: Path, folder, keep: np.ndarray
                 ) -> Optional[np.ndarray]:
    """The group id of each kept image of `folder` under `rule`, or None."""
    if rule is None:
        return None
    groups, _ = class_groups(rule, root, folder.classes)
    return groups[folder.labels[keep]]
