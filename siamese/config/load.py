"""Loading a config: YAML file, `--set` overrides, migration of old keys, validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, List

from ..errors import UserError
from .rules import check
from .schema import Config
from .typed import apply_overrides, build, read_yaml


def _migrate(raw: Any) -> Any:
    """Configs saved before `loss.distance` became `model.distance` still load."""
    if isinstance(raw, dict) and isinstance(raw.get("loss"), dict) and \
            "distance" in raw["loss"]:
        raw = dict(raw, loss=dict(raw["loss"]))
        distance = raw["loss"].pop("distance")
        model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
        raw["model"] = {"distance": distance, **model}
    return raw


def from_dict(raw: Any) -> Config:
    """Build and validate a Config from a plain mapping (as read from YAML)."""
    cfg = build(Config, _migrate(raw), "")
    check(cfg)
    return cfg


def load_config(path: str | Path, overrides: List[str] = ()) -> Config:
    """Load a YAML config, apply `--set` overrides, validate.

    Args:
        path: the YAML file.
        overrides: strings `key.path=value`.
    Returns:
        The validated Config. `data.root` is made absolute (relative paths are taken from the
        current directory).
    Raises:
        UserError: naming the file and the key path.
    """
    path = Path(path)
    raw = read_yaml(path)
    try:
        cfg = from_dict(raw)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    try:
        cfg = from_dict(apply_overrides(raw, list(overrides)))
    except UserError as e:
        raise UserError(f"--set: {e}") from None
    try:  # a name the system refuses (too long: found by fuzzing) is an OSError
        cfg.data.root = str(Path(cfg.data.root).expanduser().resolve())
        pack = cfg.data.root.endswith(".rec")
        there = Path(cfg.data.root).is_file() if pack else Path(cfg.data.root).is_dir()
    except (OSError, RuntimeError, ValueError) as e:  # a symlink loop in resolve(); a NUL
        raise UserError(f"{path}: data.root: cannot use {cfg.data.root[:100]!r} ({e})") from None
    if not there:
        raise UserError(f"{path}: data.root: no such {'pack' if pack else 'folder'}: "
                        f"{cfg.data.root}")
    return cfg


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)
