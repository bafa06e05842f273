"""Turn SIGINT/SIGTERM into a request to stop at the next step boundary.

The first signal sets a flag; the training loop finishes the step it is in, writes a checkpoint
atomically and exits with 130 (SIGINT) or 143 (SIGTERM). A second SIGINT exits at once: every
file the run writes is replaced by rename, so an exit at any moment corrupts nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Optional

log = logging.getLogger(__name__)


class StopOnSignal:
    """Context manager: `requested` becomes the signal number after SIGINT or SIGTERM."""

    def __init__(self):
        self.requested: Optional[int] = None
        self._saved: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            sys.stderr.write("second interrupt: exiting now\n")
            os._exit(130)
        self.requested = signum
        sys.stderr.write(f"\n{signal.Signals(signum).name}: finishing this step and writing "
                         f"a checkpoint (Ctrl-C again to exit at once)\n")

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._saved[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._saved.items():
            signal.signal(s, h)
