"""Write an image folder as an indexed RecordIO pack (`python -m siamese.pack`).

Each image becomes one record `recordio.pack(IRHeader(0, label, index, 0), bytes)`, the bytes
being the file itself (`copy`, the default: the pack decodes to exactly the folder's pixels,
at no encoding cost) or the image re-encoded as PNG (`png`: lossless, for formats other
readers of packs may lack). `.idx` and `.lst` follow im2rec, so MXNet's readers take the pack.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Tuple

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ..errors import UserError
from ..formats.atomic import atomic_path
from .folder import scan_folder
from .recordio import encode_record, pack_record

log = logging.getLogger(__name__)

ENCODINGS = ("copy", "png")
PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}


def pack_paths(out: str | Path) -> Tuple[Path, Path, Path]:
    """(NAME.rec, NAME.idx, NAME.lst) of `--out NAME` (a trailing .rec is allowed)."""
    base = str(out)[:-4] if str(out).endswith(".rec") else str(out)
    return Path(base + ".rec"), Path(base + ".idx"), Path(base + ".lst")


def png_bytes(path: Path) -> bytes:
    """The image re-encoded losslessly as PNG (its first frame, its own colour mode)."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in PNG_MODES:
                img = img.convert("RGBA" if "A" in img.mode else "RGB")
            buf = io.BytesIO()
            img.save(buf, format="PNG")
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        raise UserError(f"{path}: cannot read image ({e})") from None
    return buf.getvalue()


def write_pack(root: str | Path, out: str | Path, encoding: str = "copy",
               progress: bool = False) -> dict:
    """Write NAME.rec, NAME.idx and NAME.lst from the class folders under `root`.

    Returns:
        {"rec", "images", "classes", "bytes", "skipped"}; with `png`, unreadable images are
        left out (a warning each); with `copy`, they are copied and a run reports them.
    """
    if encoding not in ENCODINGS:
        raise UserError(f"--encoding: unknown {encoding!r} (valid: {', '.join(ENCODINGS)})")
    folder = scan_folder(root)
    rec, idx, lst = pack_paths(out)
    rec.parent.mkdir(parents=True, exist_ok=True)
    skipped, n = 0, 0
    with atomic_path(rec, "write the pack", "no pack was written") as trec, \
            atomic_path(idx, "write the pack", "no pack was written") as tidx, \
            atomic_path(lst, "write the pack", "no pack was written") as tlst:
        with open(trec, "wb") as fr, open(tidx, "w") as fi, open(tlst, "w") as fl:
            items = zip(folder.paths, folder.labels)
            for path, label in tqdm(items, total=len(folder.paths), desc="pack", unit="img",
                                    disable=not progress):
                try:
                    data = (folder.root / path).read_bytes() if encoding == "copy" else \
                        png_bytes(folder.root / path)
                except UserError as e:
                    log.warning("skipped: %s", e)
                    skipped += 1
                    continue
                fi.write(f"{n}\t{fr.tell()}\n")
                fl.write(f"{n}\t{float(label):f}\t{path}\n")  # im2rec's .lst line
                fr.write(encode_record(pack_record(label, n, data)))
                n += 1
    return {"rec": str(rec), "images": n, "classes": len(folder.classes),
            "bytes": rec.stat().st_size, "skipped": skipped}
