"""`python -m siamese.serve EXPORT_DIR ...`: an alias of siamese.commands.serve (also
`siamese serve`)."""

import sys

from .commands.serve import main

if __name__ == "__main__":
    sys.exit(main())
