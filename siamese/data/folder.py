"""Image folders: one sub-folder per class (or a flat folder of unlabelled images)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

import numpy as np

from ..errors import UserError
from .images import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)


@dataclass
class ImageFolder:
    """The images of a class-per-sub-folder tree.

    Attributes:
        root: the folder.
        paths: image paths relative to root, sorted by class then file name.
        labels: int array (N,), index into `classes`.
        classes: sub-folder names, sorted.
        images: uint8 (N, H, W, C) decoded images once loaded (see siamese.data.prepare), else None.
        pack: the opened RecordIO pack (siamese.data.recordio.Pack) when root is a `.rec`.
    """

    root: Path
    paths: List[str]
    labels: np.ndarray
    classes: List[str]
    images: Optional[Any] = None
    pack: Optional[Any] = None


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def scan_folder(root: str | Path, flat: bool = False) -> ImageFolder:
    """List the images under `root/<class>/`; hidden and non-image files are ignored.

    flat: a folder with no class sub-folders but images directly in it is one class "."
        (unlabelled images, for reconstruction-only training).
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data.root: no such folder: {root}")
    classes, paths, labels = [], [], []
    for cdir in sorted(p for p in root.iterdir() if p.is_dir() and _visible(p)):
        files = sorted(
            f for f in cdir.iterdir()
            if f.is_file() and _visible(f) and f.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            log.warning("%s: class folder holds no images, ignored", cdir)
            continue
        label = len(classes)
        classes.append(cdir.name)
        paths += [f"{cdir.name}/{f.name}" for f in files]
        labels += [label] * len(files)
    if not classes and flat:
        files = sorted(f.name for f in root.iterdir() if f.is_file() and _visible(f)
                       and f.suffix.lower() in IMAGE_EXTENSIONS)
        if files:
            return ImageFolder(root, files, np.zeros(len(files), np.int64), ["."])
    if not classes:
        raise UserError(f"data.root: {root}: no class sub-folders with images in them")
    return ImageFolder(root, paths, np.asarray(labels, dtype=np.int64), classes)
