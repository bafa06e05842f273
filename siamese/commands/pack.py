"""python -m siamese.pack IMAGE_DIR --out NAME [--encoding copy|png]

Writes NAME.rec, NAME.idx and NAME.lst (MXNet RecordIO, im2rec's layout) from a folder with one
sub-folder per class; `data.root: NAME.rec` then trains from the pack (docs/data.md).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ..data.packing import ENCODINGS, write_pack
from .common import run, setup_logging


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m siamese.pack", description=__doc__.split("\n")[2])
    p.add_argument("image_dir", help="image folder, one sub-folder per class")
    p.add_argument("--out", required=True, help="NAME: writes NAME.rec, NAME.idx, NAME.lst")
    p.add_argument("--encoding", default="copy", choices=ENCODINGS,
                   help="copy: each file's bytes as they are (exact, fast); png: re-encoded "
                        "losslessly as PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    setup_logging()

    def body() -> int:
        r = write_pack(args.image_dir, args.out, args.encoding, progress=not args.quiet)
        print(f"wrote {r['rec']}: {r['images']} images, {r['classes']} classes, "
              f"{r['bytes'] / 1e6:.1f} MB ({r['skipped']} skipped), with .idx and .lst")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
