"""The run directory: a contract that later tools read. `RunDir` owns every path in it.

    config.yaml      the fully resolved config
    log.jsonl        one JSON object per epoch
    train.log        the human-readable log
    curves.png       training loss, validation AUC / EER and learning rate per epoch
    tensorboard/     event files, with log.tensorboard: true
    sharing.txt      which parameters are shared (and sharing.json)
    checkpoints/     last.ckpt, best.ckpt, epoch-NNNN.ckpt (see siamese.formats.checkpoint)
    pairs/           val.csv and test.csv (left,right,label relative to data.root), split.csv,
                     digests.csv (a fingerprint of every image's pixels)
    storage.json     where the images came from and how they were kept (siamese.data.storage)
    metrics.json     {"val": {...}, "test": {...}, "best_epoch", "train_seconds", ...}
    export/          branch-symbol.json, branch-0000.params, model.json (siamese.formats.bundle)
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import List

from ..errors import UserError

ARTEFACTS = ("config.yaml", "log.jsonl", "train.log", "metrics.json", "checkpoints", "pairs",
             "export", "curves.png", "tensorboard", "storage.json")
SPLIT_FILES = ("val.csv", "test.csv", "split.csv")


class RunDir:
    """The paths of one run directory.

    Args:
        root: the folder (created by `prepare`, or an existing run).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __fspath__(self) -> str:
        return str(self.root)

    def __str__(self) -> str:
        return str(self.root)

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def log(self) -> Path:
        return self.root / "log.jsonl"

    @property
    def train_log(self) -> Path:
        return self.root / "train.log"

    @property
    def storage(self) -> Path:
        return self.root / "storage.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def curves(self) -> Path:
        return self.root / "curves.png"

    @property
    def sharing_txt(self) -> Path:
        return self.root / "sharing.txt"

    @property
    def sharing_json(self) -> Path:
        return self.root / "sharing.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, name: str) -> Path:
        """`last`, `best` or an epoch number -> its .ckpt path."""
        stem = f"epoch-{name:04d}" if isinstance(name, int) else name
        return self.checkpoints / f"{stem}.ckpt"

    def epoch_checkpoints(self) -> List[Path]:
        """The per-epoch checkpoints, oldest first."""
        return sorted(self.checkpoints.glob("epoch-*.ckpt"))

    @property
    def pairs(self) -> Path:
        return self.root / "pairs"

    def pair_file(self, split: str) -> Path:
        """pairs/val.csv or pairs/test.csv."""
        return self.pairs / f"{split}.csv"

    @property
    def split_file(self) -> Path:
        return self.pairs / "split.csv"

    @property
    def digest_file(self) -> Path:
        return self.pairs / "digests.csv"

    def stale_temporaries(self) -> List[Path]:
        """Temporary files and folders a killed write left (siamese.formats.atomic names them
        `.<name>.tmp-<pid>` / `.<name>.old-<pid>`), and a resume's unfinished pairs/.check."""
        found = []
        for folder in (self.root, self.checkpoints, self.pairs):
            if folder.is_dir():
                found += [p for p in folder.iterdir()
                          if p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name)]
        check = self.pairs / ".check"
        return found + ([check] if check.is_dir() else [])

    @property
    def export(self) -> Path:
        return self.root / "export"

    def is_run(self) -> bool:
        return self.config.is_file()

    def has_checkpoint(self) -> bool:
        """True when any checkpoint file exists under its final name (readable or not)."""
        return self.checkpoints.is_dir() and any(self.checkpoints.glob("*.ckpt"))

    def never_started(self) -> bool:
        """True for a folder a start left before it saved config.yaml: nothing in it but
        empty checkpoints/ and pairs/, train.log and the temporaries of killed writes."""
        if not self.root.is_dir() or self.is_run():
            return False
        temps = set(self.stale_temporaries())
        for p in self.root.iterdir():
            if p in temps or p.name == "train.log" or p.name.startswith(".write-test-"):
                continue
            if p.name not in ("checkpoints", "pairs") or not p.is_dir() or \
                    any(q not in temps for q in p.iterdir()):
                return False
        return True

    def clear_for_restart(self) -> None:
        """Remove what a run killed before its first checkpoint left (log, pairs, storage,
        pictures, sharing map, metrics, export), keeping config.yaml and train.log, so the run
        starts again from the beginning in the same folder."""
        keep = ("config.yaml", "train.log")
        for name in ARTEFACTS + ("sharing.txt", "sharing.json"):
            target = self / name
            if name in keep:
                continue
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.pairs.mkdir(exist_ok=True)

    def read_metrics(self) -> dict:
        """metrics.json, or {} when there is none (or it is unreadable)."""
        try:
            m = json.loads(self.metrics.read_text())
        except (OSError, ValueError, RecursionError):  # RecursionError: found by fuzzing
            return {}
        return m if isinstance(m, dict) else {}


def default_run_dir(config_path: str | Path, root: str | Path = "runs") -> Path:
    """runs/<config name>-<YYYYmmdd-HHMMSS>/"""
    return Path(root) / f"{Path(config_path).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_run_dir(path: Path, force: bool = False) -> RunDir:
    """Create the run directory, refusing one that already holds a run unless `force`.

    With `force` the previous run's artefacts are removed (other files are left alone).
    """
    run = RunDir(path)
    if run.is_run():
        if not force:
            state = "a finished run" if run.metrics.exists() else "a run"
            raise UserError(f"{run}: already holds {state}; pass --force to replace it, "
                            f"or choose another --run-dir")
        for name in ARTEFACTS:
            target = run / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    try:
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        run.pairs.mkdir(exist_ok=True)
        probe = run / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"{run}: cannot write the run directory ({e.strerror})") from None
    return run
