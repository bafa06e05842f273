"""train.py with one planted non-finite batch on the worker of rank 1 only (epoch 1, batch 2):
its images become NaN, so its loss and gradients do; the other worker's batch is fine.

    python -m siamese.launch ... tests/helpers/plant_nonfinite.py CONFIG --run-dir DIR ...
"""

import runpy
import sys
from pathlib import Path

from siamese.data.loaders import PairBatches

ROOT = Path(__file__).resolve().parents[2]
_loader = PairBatches.loader


def loader(self, epoch):
    for k, batch in enumerate(_loader(self, epoch)):
        if self.rank == 1 and epoch == 0 and k == 1:
            batch = (batch[0] * float("nan"),) + tuple(batch[1:])
        yield batch


PairBatches.loader = loader
sys.argv = [str(ROOT / "train.py")] + sys.argv[1:]
runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
