"""Identification figures: the CMC curve (identification rate by rank) and DIR against FAR."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..formats.figures import pyplot, save


def plot_cmc(path: Path, curves: dict, title: str) -> None:
    """Rate by rank for each named curve ({label: [rank-1, rank-2, ...]})."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=110)
    for label, rates in curves.items():
        ax.plot(np.arange(1, len(rates) + 1), rates, "o-", ms=3, lw=1.6, label=label)
    ax.set_xlabel("rank")
    ax.set_ylabel("identification rate (true identity within rank)")
    ax.set_ylim(max(0.0, min(min(r) for r in curves.values()) - 0.05), 1.005)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)


def plot_dir_far(path: Path, far: Sequence[float], dir_: Sequence[float], n_impostor: int,
                 title: str) -> None:
    """Detection and identification rate against false alarm rate (log axis)."""
    plt = pyplot()
    floor = 0.5 / max(1, n_impostor)  # below the smallest measurable FAR
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=110)
    ax.step(np.maximum(far, floor), dir_, where="post", lw=1.8)
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.005)
    ax.set_xlabel("false alarm rate: impostor probes accepted (log)")
    ax.set_ylabel("detection and identification rate")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
