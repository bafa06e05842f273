"""Split class folders into a gallery / probe protocol for python -m siamese.gallery.

    python scripts/split_identities.py IMAGE_DIR OUT --enroll 6,8 \
        --calibration-unknown 1,9 --test-unknown 3,7 [--shots 5] [--seed 0]

Writes (copies of the image files):
    OUT/gallery/<id>       --shots images of each enrolled identity
    OUT/calibration/<id>   half of the other images of each enrolled identity, and every image
                           of the --calibration-unknown identities: `calibrate --probes`
    OUT/test/<id>          the other half, and every image of the --test-unknown identities:
                           `evaluate --probes` (never used to choose anything)
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image_dir", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--enroll", required=True, help="identities enrolled, comma-separated")
    p.add_argument("--calibration-unknown", required=True, help="impostors for calibrate")
    p.add_argument("--test-unknown", required=True, help="impostors for evaluate")
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    names = {k: [n for n in getattr(a, k).split(",") if n] for k in
             ("enroll", "calibration_unknown", "test_unknown")}
    every = sum(names.values(), [])
    if len(set(every)) < len(every):
        print("error: an identity is named twice", file=sys.stderr)
        return 2
    for n in every:
        if not (a.image_dir / n).is_dir():
            print(f"error: {a.image_dir / n}: no such identity folder", file=sys.stderr)
            return 2
    if a.out.exists():
        print(f"error: {a.out}: exists; choose a new folder", file=sys.stderr)
        return 2
    rng = random.Random(a.seed)

    def copy(files, part, name):
        (a.out / part / name).mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy(f, a.out / part / name / f.name)

    for n in names["enroll"]:
        files = sorted((a.image_dir / n).iterdir())
        rng.shuffle(files)
        rest = files[a.shots:]
        copy(files[:a.shots], "gallery", n)
        copy(rest[: len(rest) // 2], "calibration", n)
        copy(rest[len(rest) // 2:], "test", n)
    for part, key in (("calibration", "calibration_unknown"), ("test", "test_unknown")):
        for n in names[key]:
            copy(sorted((a.image_dir / n).iterdir()), part, n)
    print(f"{a.out}: gallery/, calibration/, test/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
