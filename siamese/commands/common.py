"""Plumbing shared by the command lines: logging handlers and exit codes."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Optional

from ..errors import Interrupted, RunError, UserError


def setup_logging(log_file: Optional[Path] = None, verbose: bool = False) -> None:
    """Log lines to stderr and, when given, to a file (the run's train.log)."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for h in list(root.handlers):
        root.removeHandler(h)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    root.addHandler(console)
    if log_file is not None:
        handler = logging.FileHandler(log_file)
        handler.setFormatter(fmt)
        root.addHandler(handler)


def _stop_now(signum, frame) -> None:
    name = signal.Signals(signum).name
    raise Interrupted(signum, f"{name}: stopped outside the training loop (while loading, "
                              f"building or exporting); files already written are complete, "
                              f"and a run continues from its last checkpoint with python "
                              f"train.py --resume RUN_DIR")


def run(main: Callable[[], int]) -> int:
    """Call a CLI body: bad input -> one line and exit 2; a run that could not finish -> 1;
    SIGINT / SIGTERM -> 130 / 143 with a one-line message, whenever they come (the training
    loop installs its own handlers, which finish the step and checkpoint first)."""
    saved = {}
    if threading.current_thread() is threading.main_thread():
        saved = {s: signal.signal(s, _stop_now) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _exit_code(main)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def _exit_code(main: Callable[[], int]) -> int:
    try:
        return main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Interrupted as e:
        print(str(e), file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001
        # The signal handler raises wherever the main thread is: inside threading's own lock
        # code, the unwinding can fail ("release unlocked lock") and hide the Interrupted.
        cause = _interrupted_in(e)
        if cause is None:
            raise
        print(str(cause), file=sys.stderr)
        return cause.code


def _interrupted_in(e: BaseException) -> Optional[Interrupted]:
    """The Interrupted an exception was raised while handling, if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, Interrupted):
            return e
        seen.add(id(e))
        e = e.__context__ or e.__cause__
    return None


def rates(text: str) -> list:
    """An argparse type: comma-separated rates in (0, 1), e.g. "0.01,0.001"."""
    try:
        out = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected rates like 0.01,0.001, got {text!r}") \
            from None
    if not out or not all(0.0 < f < 1.0 for f in out):
        raise argparse.ArgumentTypeError(f"each rate must be in (0, 1), got {text!r}")
    return out
