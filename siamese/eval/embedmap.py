"""A 2-D map of embeddings (`eval.py TARGET --plot-embeddings --root DIR`): PCA always, t-SNE
when scikit-learn is installed, UMAP when umap-learn is; one colour per class and a few image
thumbnails at their points, written as embeddings.png beside the report."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np

from ..data.folder import scan_folder
from ..errors import UserError
from ..formats.figures import pyplot, save


def pca2(x: np.ndarray) -> np.ndarray:
    """The first two principal components of rows x (N, E) -> (N, 2)."""
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def maps(x: np.ndarray, seed: int = 0) -> Dict[str, np.ndarray]:
    """{"PCA": ..., "t-SNE": ... (scikit-learn), "UMAP": ... (umap-learn)}, each (N, 2)."""
    out = {"PCA": pca2(x)}
    try:
        from sklearn.manifold import TSNE

        out["t-SNE"] = TSNE(2, init="pca", random_state=seed,
                            perplexity=min(30.0, max(2.0, (len(x) - 1) / 3))).fit_transform(x)
    except ImportError:
        pass
    try:
        import umap

        out["UMAP"] = umap.UMAP(random_state=seed).fit_transform(x)
    except ImportError:
        pass
    return out


def plot_map(path: Path, points: Dict[str, np.ndarray], labels: np.ndarray,
             classes: List[str], images: np.ndarray, thumbs: int = 16, seed: int = 0) -> None:
    """One panel per method; up to `thumbs` thumbnails (uint8 images (N, H, W, C))."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    plt = pyplot()
    fig, axes = plt.subplots(1, len(points), figsize=(6 * len(points), 5.5), dpi=90,
                             squeeze=False)
    cmap = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
    pick = np.random.default_rng(seed).choice(len(labels), min(thumbs, len(labels)), False)
    for ax, (name, xy) in zip(axes[0], points.items()):
        for c in np.unique(labels):
            m = labels == c
            ax.scatter(xy[m, 0], xy[m, 1], s=8, color=cmap(c % cmap.N),
                       label=classes[c] if len(classes) <= 20 else None)
        for k in pick:
            im = images[k][..., 0] if images.shape[-1] == 1 else images[k]
            box = OffsetImage(im, zoom=max(0.3, 24 / im.shape[0]), cmap="gray")
            ax.add_artist(AnnotationBbox(box, xy[k], frameon=True, pad=0.1))
        ax.set_title(f"{name} of {len(labels)} embeddings, {len(classes)} classes")
        ax.set_xticks([])
        ax.set_yticks([])
        if len(classes) <= 20:
            ax.legend(fontsize=7, markerscale=2, loc="best")
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)


def embedding_map(model, root: Path, seed: int, progress: bool,
                  limit: int = 2000) -> tuple:
    """(2-D points per method, labels, class names, images) of up to `limit` images of the
    class folders under `root` (a seeded sample), for embeddings.png."""
    if not model.comparator.embeds:
        raise UserError("--plot-embeddings: a two-channel pair scorer has no embeddings")
    folder = scan_folder(root)
    pick = np.sort(np.random.default_rng(seed).choice(
        len(folder.paths), min(limit, len(folder.paths)), replace=False))
    images = model.load_files(root, [folder.paths[i] for i in pick], progress)
    emb = model.comparator.embed_side(images, "left", progress)
    return maps(emb, seed), folder.labels[pick], list(folder.classes), images
