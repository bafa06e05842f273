"""`python -m siamese TOOL ...`: the same as the `siamese` command (siamese.commands.main)."""

import sys

from .commands.main import main

sys.exit(main())
