"""`python -m siamese.pack`, kept for the README's command lines: an alias of
siamese.commands.pack (also `siamese pack`)."""

import sys

from .commands.pack import main

if __name__ == "__main__":
    sys.exit(main())
