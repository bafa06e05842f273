"""Evaluation figures (matplotlib, no display needed): ROC curve and score histograms,
written through siamese.formats.figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..formats.figures import pyplot, save
from .metrics import roc


def plot_roc(path: Path, scores: np.ndarray, labels: np.ndarray, higher_is_similar: bool,
             eer: float, title: str) -> None:
    """ROC curve with a log-scaled false accept axis and the EER point marked."""
    plt = pyplot()
    far, tar, _ = roc(scores if higher_is_similar else -np.asarray(scores), labels)
    floor = 0.5 / max(1, int((np.asarray(labels) == 0).sum()))  # below the smallest FAR step
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=110)
    ax.plot(np.maximum(far, floor), tar, lw=1.8, label="ROC")
    ax.plot([max(eer, floor)], [1 - eer], "o", color="crimson", label=f"EER {eer:.4f}")
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(max(0.0, tar.min() - 0.02), 1.005)
    ax.set_xlabel("false accept rate (log)")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)


def plot_scores(path: Path, scores: np.ndarray, labels: np.ndarray, threshold: float,
                score_name: str, title: str) -> None:
    """Histograms of same and different pair scores with the decision threshold."""
    plt = pyplot()
    scores, labels = np.asarray(scores), np.asarray(labels).astype(bool)
    bins = np.linspace(scores.min(), scores.max(), 60)
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=110)
    ax.hist(scores[labels], bins=bins, alpha=0.6, color="tab:green", label="same pairs")
    ax.hist(scores[~labels], bins=bins, alpha=0.6, color="tab:red", label="different pairs")
    ax.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.4f}")
    ax.set_xlabel(score_name)
    ax.set_ylabel("pairs")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
