"""How every picture of the tool is written: matplotlib without a display, PNG through a
temporary file and a rename (never half a picture), and a wrapper that turns a failure to draw
into one warning (a picture is never worth a failed run or report)."""

from __future__ import annotations

import logging
from pathlib import Path

from .atomic import atomic_path

log = logging.getLogger(__name__)


def save(fig, path: Path) -> None:
    """Write a figure as PNG through a temporary file and a rename (never half a picture)."""
    with atomic_path(Path(path), "draw a picture") as tmp:
        fig.savefig(tmp, format="png")


def safely(path: Path, draw, *args) -> bool:
    """Call a drawing function; a failure is one warning, never the end of a run or report."""
    try:
        draw(path, *args)
        return True
    except Exception as e:  # noqa: BLE001  a picture is never worth a failed run
        log.warning("%s: not drawn (%s: %s)", path, type(e).__name__, e)
        return False


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
