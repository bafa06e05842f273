"""The run directory: a contract that later tools read.

    config.yaml      the fully resolved config
    log.jsonl        one JSON object per epoch
    train.log        the human-readable log
    checkpoints/     last.ckpt and best.ckpt (see siamese.checkpoint)
    pairs/           val.csv and test.csv: left,right,label relative to data.root
    metrics.json     {"val": {...}, "test": {...}, "best_epoch", "train_seconds"}
    export/          branch-symbol.json, branch-0000.params, model.json
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from .errors import UserError

ARTEFACTS = ("config.yaml", "log.jsonl", "train.log", "metrics.json", "checkpoints", "pairs",
             "export")


def default_run_dir(config_path: str | Path, root: str | Path = "runs") -> Path:
    """runs/<config name>-<YYYYmmdd-HHMMSS>/"""
    return Path(root) / f"{Path(config_path).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_run_dir(path: Path, force: bool = False) -> Path:
    """Create the run directory, refusing one that already holds a run unless `force`.

    With `force` the previous run's artefacts are removed (other files are left alone).
    """
    path = Path(path)
    if (path / "config.yaml").exists():
        if not force:
            state = "a finished run" if (path / "metrics.json").exists() else "a run"
            raise UserError(f"{path}: already holds {state}; pass --force to replace it, "
                            f"or choose another --run-dir")
        for name in ARTEFACTS:
            target = path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    try:
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
        (path / "pairs").mkdir(exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"{path}: cannot write the run directory ({e.strerror})") from None
    return path


def _writing(path: Path):
    """Turn an OSError while writing `path` into a UserError naming it."""
    import contextlib

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except OSError as e:
            raise UserError(f"{path}: cannot write ({e.strerror or e}); earlier files and "
                            f"checkpoints are unchanged") from None

    return guard()


def write_text(path: Path, text: str) -> None:
    """Write a text file via a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with _writing(path):
        tmp.write_text(text)
        os.replace(tmp, path)


def write_json(path: Path, obj: dict) -> None:
    """Write JSON via a temporary file and a rename."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def append_jsonl(path: Path, obj: dict) -> None:
    with _writing(path), open(path, "a") as fh:
        fh.write(json.dumps(obj) + "\n")
