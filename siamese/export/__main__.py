"""python -m siamese.export RUN_DIR [--checkpoint best|last] [--onnx] [--out DIR]"""

import sys

from ..commands.export import main

sys.exit(main())
