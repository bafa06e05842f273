"""Training curves of a run, redrawn at every epoch end: `RUN_DIR/curves.png` from log.jsonl.

Training loss (and its similarity / reconstruction parts with a decoder), validation AUC, EER
and N-way accuracy (when `train.select: nway:N` logs it), and the learning rate against the
epoch, the best epoch marked. Written to a temporary file and renamed; drawing never stops a
run (a failure is one warning).
"""

from __future__ import annotations

from pathlib import Path
from typing import List

from ..formats.figures import pyplot, safely, save


def plot_curves(path: Path, rows: List[dict], best_epoch: int) -> None:
    """Draw the curves of log.jsonl `rows` into `path` (PNG), atomically."""
    plt = pyplot()
    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=100)
    loss_ax, val_ax, lr_ax = axes
    loss_ax.plot(epochs, [r["train_loss"] for r in rows], "o-", label="training loss")
    for part in ("train_similarity", "train_reconstruction"):
        if any(part in r for r in rows):
            loss_ax.plot(epochs, [r.get(part) for r in rows], ".--",
                         label=part.replace("train_", ""))
    loss_ax.set_yscale("log" if all(r["train_loss"] > 0 for r in rows) else "linear")
    loss_ax.set_title("training loss (per example)")
    for key, label in (("val_auc", "validation AUC"), ("val_eer", "validation EER"),
                       ("val_nway", "validation N-way accuracy (train.select: nway)")):
        values = [r.get(key) for r in rows]
        if any(v is not None for v in values):
            val_ax.plot(epochs, values, "o-", label=label)
    val_ax.set_title("validation")
    lr_ax.plot(epochs, [r["lr"] for r in rows], "o-", color="tab:gray", label="learning rate")
    lr_ax.set_title("learning rate (at the epoch's end)")
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if best_epoch:
            ax.axvline(best_epoch, color="crimson", ls=":", label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)


def try_plot_curves(path: Path, rows: List[dict], best_epoch: int) -> bool:
    """plot_curves, with any failure turned into a warning (a picture never stops a run)."""
    return safely(path, plot_curves, rows, best_epoch)
