"""`python -m siamese.bench`, kept for the README's command lines: an alias of
siamese.commands.bench.training (also `siamese bench`)."""

import sys

from .commands.bench.training import main

if __name__ == "__main__":
    sys.exit(main())
