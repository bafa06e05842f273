"""mistakes.png: the worst false accepts and false rejects at the threshold, each pair's two
images side by side with its score, so a user sees at once what the model confuses."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..formats.figures import pyplot, save


def worst(scores: np.ndarray, labels: np.ndarray, threshold: float, higher_is_similar: bool,
          n: int = 6) -> tuple:
    """(false accepts, false rejects): indices of up to n each, the most confident first."""
    s = np.asarray(scores, np.float64) * (1.0 if higher_is_similar else -1.0)
    t = threshold * (1.0 if higher_is_similar else -1.0)
    y = np.asarray(labels).astype(bool)
    accepts = np.flatnonzero(~y & (s >= t))
    rejects = np.flatnonzero(y & (s < t))
    return accepts[np.argsort(-s[accepts])][:n], rejects[np.argsort(s[rejects])][:n]


def plot_mistakes(path: Path, root: Path, left: Sequence[str], right: Sequence[str],
                  scores: np.ndarray, labels: np.ndarray, threshold: float,
                  higher_is_similar: bool, n: int = 6) -> None:
    """Draw up to n false accepts (left column) and n false rejects (right column)."""
    plt = pyplot()
    accepts, rejects = worst(scores, labels, threshold, higher_is_similar, n)
    rows = max(len(accepts), len(rejects), 1)
    fig, axes = plt.subplots(rows, 4, figsize=(8, 2.1 * rows + 0.6), dpi=90, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for col, (kind, picks) in enumerate((("false accept", accepts), ("false reject", rejects))):
        for r, k in enumerate(picks):
            for j, name in enumerate((left[k], right[k])):
                with Image.open(Path(root) / name) as im:
                    axes[r, 2 * col + j].imshow(np.asarray(im.convert("RGB")))
                axes[r, 2 * col + j].set_title("/".join(Path(name).parts[-2:]), fontsize=7)
            axes[r, 2 * col].text(0, -0.35, f"{kind}: score {scores[k]:.4f}", fontsize=8,
                                  transform=axes[r, 2 * col].transAxes)
        if not len(picks):
            axes[0, 2 * col].text(0, 0.5, f"no {kind}s", fontsize=10)
    op = ">=" if higher_is_similar else "<="
    fig.suptitle(f"worst mistakes at the threshold (same when score {op} {threshold:.4f}): "
                 f"false accepts left, false rejects right", fontsize=9)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)



