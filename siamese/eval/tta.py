"""Test-time averaging (`eval.py --tta K`): each image's embedding is the mean of the embeddings
of the image and of its four copies shifted by K pixels (up, down, left, right; edges
repeated), put back on the unit sphere when the model's embeddings are there. Pair lists, the
validation pairs of --far, n-way and fixed episodes then use the averaged embeddings; the export
itself is unchanged (`siamese export RUN_DIR --tta K` writes one whose graph averages:
siamese.export.tta, model.json `tta`).

Test-time symmetries (`eval.py --symmetries NAME`): each image is embedded under the turns and
mirror images of NAME (siamese.data.turns: flip, rotations, dihedral), each averaged over shifts
with --tta, and the V embeddings are put side by side, divided by sqrt(V): the squared distance
of two images is the mean of their V squared distances. The export's own version is
siamese.export.symmetries (model.json `symmetries`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.storage import load_files
from ..data.turns import needs_square, symmetry_turns, turned
from ..errors import UserError
from ..scoring.comparator import Comparator, score_pair_list
from ..scoring.scores import score_pairs


def shifted(images: np.ndarray, k: int) -> list:
    """The four copies of uint8 images (N, H, W, C) moved by k pixels (down, up, right,
    left), edges repeated."""
    pad = np.pad(images, ((0, 0), (k, k), (k, k), (0, 0)), mode="edge")
    h, w = images.shape[1:3]
    return [pad[:, dy:dy + h, dx:dx + w] for dy, dx in
            ((0, k), (2 * k, k), (k, 0), (k, 2 * k))]


def averaged(embed, images: np.ndarray, k: int) -> np.ndarray:
    """mean of embed(x) over the images and their shifted copies (k = 0: embed(images))."""
    first = embed(images)
    if k <= 0:
        return first
    total = first.astype(np.float64)
    for copy in shifted(images, k):
        total += embed(np.ascontiguousarray(copy))
    mean = total / 5.0
    norms = np.linalg.norm(first, axis=1)
    if len(norms) and np.allclose(norms, 1.0, atol=1e-3):  # normalised model: stay on sphere
        mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    return mean.astype(np.float32)


def symmetric(embed, images: np.ndarray, k: int, symmetries: str = "none") -> np.ndarray:
    """The embeddings of images under each turn of `symmetries` (each averaged over shifts of
    k pixels), side by side and divided by sqrt(V); "none": averaged(embed, images, k)."""
    turns = symmetry_turns(symmetries, "--symmetries")
    if len(turns) == 1:
        return averaged(embed, images, k)
    parts = [averaged(embed, turned(images, t), k) for t in turns]
    return (np.concatenate(parts, axis=1) / np.sqrt(len(turns))).astype(np.float32)


def image_scores(c: Comparator, images: np.ndarray, k: int, progress: bool = False,
                 symmetries: str = "none"):
    """A function (left indices, right indices) -> scores over uint8 images (N, H, W, C):
    each image embedded once per side, averaged over shifts of k pixels (0: none), under
    `symmetries`; a pair scorer runs each pair."""
    if not c.embeds:
        return lambda a, b: c.score(images, a, b, progress)
    left = symmetric(lambda x: c.embed_side(x, "left", progress), images, k, symmetries)
    right = left if c.same_embedding else \
        symmetric(lambda x: c.embed_side(x, "right", progress), images, k, symmetries)
    return lambda a, b: score_pairs(c.spec, left[a], right[b])


def pair_list_scores(c: Comparator, pairs, root: Path, size, channels: int, k: int,
                     progress: bool = False, symmetries: str = "none") -> tuple:
    """siamese.scoring.comparator.score_pair_list with embeddings averaged over shifts of k
    pixels and under `symmetries`: (scores (n,), the unique image paths, their decoded
    images)."""
    if k <= 0 and symmetries == "none":
        return score_pair_list(c, pairs, root, size, channels, progress)
    names = sorted(set(pairs.left) | set(pairs.right))
    images = load_files(Path(root), names, size, channels, progress)
    index = {n: i for i, n in enumerate(names)}
    scores = image_scores(c, images, k, progress, symmetries)([index[p] for p in pairs.left],
                                                              [index[p] for p in pairs.right])
    return scores, names, images


def check_tta(meta: dict, k: int, export_dir: Path, embeds: bool) -> None:
    """--tta K refused where it cannot be right: an export whose graph already averages
    (model.json `tta` > 0, from `siamese export --tta`), or one without embeddings."""
    if k and meta.get("tta"):
        raise UserError(f"--tta: {Path(export_dir) / 'model.json'} already averages over shifts "
                        f"of {meta['tta']} pixels (tta {meta['tta']}); --tta {k} would average "
                        f"twice: drop --tta or use a plain export")
    if k and not embeds:
        raise UserError(f"--tta: averages embeddings; {export_dir} is a {meta['kind']}, "
                        f"which scores pairs (no embeddings)")


def check_symmetries(meta: dict, name: str, export_dir: Path, embeds: bool) -> None:
    """--symmetries NAME refused where it cannot be right: an export whose graph already embeds
    symmetries (model.json `symmetries`), one without embeddings or with a learned head, and
    quarter turns of non-square inputs."""
    symmetry_turns(name, "--symmetries")
    if name == "none":
        return
    if meta.get("symmetries", "none") != "none":
        raise UserError(f"--symmetries: {Path(export_dir) / 'model.json'} already embeds the "
                        f"symmetries {meta['symmetries']}; --symmetries {name} would do it "
                        f"twice: drop --symmetries or use a plain export")
    if not embeds or meta["score"]["name"] == "logistic":
        raise UserError(f"--symmetries: compares embeddings by distance; {export_dir} "
                        f"{'scores pairs' if not embeds else 'has a learned head'}")
    h, w = meta["input"]["shape"][2:]
    if needs_square(name) and h != w:
        raise UserError(f"--symmetries: {name} turns images by a quarter, which needs square "
                        f"inputs; {Path(export_dir) / 'model.json'} takes {h}x{w} (flip does "
                        f"not)")
