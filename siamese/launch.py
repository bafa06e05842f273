"""`python -m siamese.launch`, kept for the README's command lines: an alias of
siamese.commands.launch (also `siamese launch`)."""

import sys

from .commands.launch import main

if __name__ == "__main__":
    sys.exit(main())
