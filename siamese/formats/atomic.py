"""Write a file or a folder so that a crash at any moment leaves either the old or the new one.

The one write-to-temporary-then-rename of the project: a temporary name in the same folder (so
the rename stays on one file system), optionally flushed to disk, then `os.replace`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Iterator

from ..errors import UserError


def temp_name(path: Path, tag: str = "tmp") -> Path:
    """The hidden temporary sibling of `path` a write goes through: `.<name>.<tag>-<pid>`."""
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: Path, what: str = "write", keeps: str = "earlier files and checkpoints "
                "are unchanged") -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed over `path`.

    An OSError (disk full, no permission) becomes a UserError naming `path`; the temporary
    file is removed and `path` is left as it was.
    """
    path = Path(path)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot {what} ({e.strerror or e}); {keeps}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path: Path, data: bytes, sync: bool = False, **kwargs) -> None:
    """Write bytes atomically; `sync` flushes them to disk before the rename."""
    with atomic_path(path, **kwargs) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically."""
    write_bytes(path, text.encode())


def write_json(path: Path, obj: dict) -> None:
    """Write JSON (indented, newline-terminated) atomically."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def append_jsonl(path: Path, obj: dict) -> None:
    """Append one JSON line (appends are not renames: a crash can tear only the last line)."""
    try:
        with open(path, "a") as fh:
            fh.write(json.dumps(obj) + "\n")
    except OSError as e:
        raise UserError(f"{path}: cannot write ({e.strerror or e}); earlier files and "
                        f"checkpoints are unchanged") from None


def swap_dir(tmp: Path, out: Path) -> None:
    """Replace folder `out` by folder `tmp` with renames only; the old folder is removed last.
    SIGINT and SIGTERM wait until both renames are done (a handler that raises between them
    would leave no folder at `out`)."""
    old = temp_name(out, "old")
    with _signals_deferred():
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    main = threading.current_thread() is threading.main_thread()
    sigs = {signal.SIGINT, signal.SIGTERM}
    if main:
        signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        if main:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, sigs)
