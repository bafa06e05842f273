"""`python -m siamese.predict`, kept for the README's command lines: an alias of
siamese.commands.predict (also `siamese predict`)."""

import sys

from .commands.predict import main

if __name__ == "__main__":
    sys.exit(main())
