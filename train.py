"""Train a siamese network (the tool is siamese.commands.train; `siamese train` is the same).

    python train.py CONFIG [--set key=value ...] [--run-dir DIR] [--force]
    python train.py [CONFIG] --resume RUN_DIR [--set train.epochs=N ...]
"""

import sys

from siamese.commands.train import main, parse_args  # noqa: F401  tests call train.main

if __name__ == "__main__":
    sys.exit(main())
