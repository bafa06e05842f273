"""Plumbing shared by the command lines: logging handlers and exit codes."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Callable, Optional

from .errors import Interrupted, RunError, UserError


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


def run(main: Callable[[], int]) -> int:
    """Call a CLI body: bad input -> one line and exit 2; a run that could not finish -> 1;
    Ctrl-C -> 130."""
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
