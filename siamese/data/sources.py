"""Where a data set's images come from: a class-per-sub-folder tree of image files, or an MXNet
RecordIO pack (`.rec`), and reading its i-th image, decoded and resized. siamese.data.storage
decides what is kept of them."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .folder import ImageFolder, scan_folder
from .images import decode_bytes, load_image
from .recordio import open_pack


def scan_source(root: str, flat: bool = False) -> ImageFolder:
    """The images of `data.root`: a class-per-sub-folder tree, or a `.rec` pack."""
    if str(root).endswith(".rec"):
        pack, paths, labels, classes = open_pack(Path(root))
        return ImageFolder(Path(root), paths, labels, classes, pack=pack)
    return scan_folder(root, flat=flat)


def item_loader(folder: ImageFolder, size, channels: int) -> Callable[[int], np.ndarray]:
    """i -> the i-th image of the folder or pack, decoded and resized (UserError if not)."""
    if folder.pack is not None:
        pack, rec = folder.pack, folder.root
        return lambda i: decode_bytes(pack.image_bytes(i), size, channels,
                                      f"{rec}:{folder.paths[i]}")
    return lambda i: load_image(folder.root / folder.paths[i], size, channels)
