"""Write scikit-learn's bundled handwritten digits as an image folder.

Run once by the maintainers (needs scikit-learn); the result is committed under data/digits,
so users never need this script or a download.

    python data/make_digits.py
"""

from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    out = Path(__file__).resolve().parent / "digits"
    counts = {}
    for image, label in zip(digits.images, digits.target):
        n = counts.get(int(label), 0)
        counts[int(label)] = n + 1
        # (8, 8) in 0..16 -> uint8 0..255, bicubic upscale to 32x32.
        pixels = np.clip(np.round(image * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        big = Image.fromarray(pixels, mode="L").resize((32, 32), Image.BICUBIC)
        path = out / str(int(label)) / f"{n:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        big.save(path, optimize=True)
    print(f"wrote {sum(counts.values())} images in {len(counts)} classes to {out}")


if __name__ == "__main__":
    main()
