"""Evaluate a trained model on held-out pairs or n-way episodes (the tool is
siamese.commands.eval; `siamese eval` is the same).

    python eval.py RUN_DIR                                  # the run's own test pairs
    python eval.py RUN_DIR_OR_EXPORT_DIR --pairs FILE --root DIR [--out report.json]
    python eval.py RUN_DIR_OR_EXPORT_DIR --n-way 5,20 --root DIR [--episodes 1000] [--shots 1]
    python eval.py RUN_DIR --far 0.01,0.001      # thresholds for target false accept rates,
                                                 # chosen on the run's validation pairs
    python eval.py RUN_DIR_OR_EXPORT_DIR --episode-file data/omniglot/runs   # fixed episodes
    python eval.py RUN_DIR_OR_EXPORT_DIR --retrieval --root DIR     # leave-one-out retrieval
    python eval.py RUN_DIR --open-set --classes test [--shots K]    # gallery / probe protocol

The model, its preprocessing, distance and threshold come from the export's model.json.
"""

import sys

from siamese.commands.eval import main, parse_args  # noqa: F401  tests call eval.main

if __name__ == "__main__":
    sys.exit(main())
