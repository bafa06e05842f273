"""python -m siamese.export RUN_DIR [--checkpoint best|last] [--onnx] [--out DIR]"""

import sys

from .cli import main

sys.exit(main())
