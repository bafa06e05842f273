"""`python -m siamese.gallery`, kept for the README's command lines: an alias of
siamese.commands.gallery (also `siamese gallery`)."""

import sys

from .commands.gallery import main

if __name__ == "__main__":
    sys.exit(main())
