"""Use an export directory alone: compare two images, or embed a folder.

    python -m siamese.predict EXPORT_DIR a.png b.png
    python -m siamese.predict EXPORT_DIR --embed IMAGE_DIR --out embeddings.npz [--side right]

Preprocessing, distance (or head) and threshold come from EXPORT_DIR/model.json; no training
code or config is read. Any image size, grayscale or colour: converted as model.json says.
The first image is the left one, the second the right one (which matters for pseudo-siamese
and two-channel exports, and for model.json's preprocess.right_view).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import List

import numpy as np

from ..data.images import IMAGE_EXTENSIONS, load_image, load_images
from ..errors import UserError
from ..formats.atomic import atomic_path
from ..formats.preprocess import CHANNELS
from ..scoring.bundles import open_comparator
from ..scoring.scores import decide
from .common import run, setup_logging


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m siamese.predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export_dir", type=Path)
    p.add_argument("images", type=Path, nargs="*", help="two image files to compare")
    p.add_argument("--embed", type=Path, metavar="IMAGE_DIR", help="embed every image below")
    p.add_argument("--out", type=Path, default=Path("embeddings.npz"), help="--embed output")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch for --embed")
    p.add_argument("--side", choices=("left", "right"), default="left",
                   help="--embed with the left or the right network (pseudo-siamese exports)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    return p.parse_args(argv)


def _pixels(meta: dict, path: Path) -> np.ndarray:
    pre = meta["preprocess"]
    return load_image(path, pre["resize"], CHANNELS[pre["color"]])


def compare(comparator, meta: dict, a: Path, b: Path) -> dict:
    """Score, threshold and decision for two image files (a on the left, b on the right)."""
    spec = meta["score"]
    images = np.stack([_pixels(meta, a), _pixels(meta, b)])
    score = float(comparator.score(images, [0], [1])[0])
    same = bool(decide(spec, np.array([score]), spec["threshold"])[0])
    kind = "probability same" if spec["higher_is_similar"] else f"{spec['name']} distance"
    return {"left": str(a), "right": str(b), "score": score, "score_kind": kind,
            "threshold": spec["threshold"], "same": same}


def list_images(folder: Path) -> List[Path]:
    """Image files below `folder`, sorted; hidden files and folders skipped."""
    if not folder.is_dir():
        raise UserError(f"--embed: no such folder: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and p.suffix.lower() in IMAGE_EXTENSIONS
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        raise UserError(f"--embed: {folder} holds no image files")
    return files


def embed_folder(comparator, meta: dict, folder: Path, out: Path, side: str = "left") -> dict:
    """Embed every image below `folder` into an .npz (names relative to folder, embeddings)."""
    if not comparator.embeds:
        raise UserError(f"--embed: {meta['kind']} exports score pairs and have no embeddings")
    files = list_images(folder)
    pre = meta["preprocess"]
    start = time.perf_counter()
    images = load_images(files, pre["resize"], CHANNELS[pre["color"]],
                         progress=sys.stderr.isatty())
    emb = comparator.embed_side(images, side, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, names=np.array([str(f.relative_to(folder)) for f in files]),
                 embeddings=emb)
    return {"images": len(files), "seconds": seconds, "out": str(out)}


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> int:
        setup_logging()
        if bool(args.embed) == bool(args.images) or (args.images and len(args.images) != 2):
            raise UserError("give either two image files to compare or --embed IMAGE_DIR")
        if args.batch_size < 1:
            raise UserError("--batch-size must be at least 1")
        if args.embed:
            comparator, meta = open_comparator(args.export_dir, args.batch_size)
            r = embed_folder(comparator, meta, args.embed, args.out, args.side)
            print(f"embedded {r['images']} images in {r['seconds']:.2f}s "
                  f"({r['images'] / r['seconds']:.0f} images/s) -> {r['out']}")
            return 0
        comparator, meta = open_comparator(args.export_dir, 2)
        r = compare(comparator, meta, *args.images)
        if args.json:
            print(json.dumps(r))
        else:
            verdict = "same" if r["same"] else "different"
            op = ">=" if meta["score"]["higher_is_similar"] else "<="
            print(f"{r['score_kind']} {r['score']:.4f} (same when {op} {r['threshold']:.4f}): "
                  f"{verdict}")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
