"""siamese: train, evaluate and export siamese networks on Gluon/MXNet."""

import os

__version__ = "0.1.0"

# MXNet sizes its OpenMP pool once, at import, and halves the core count when this is unset
# (it assumes hyper-threads): on 2 cores it would run every kernel on one thread. Setting it
# here, before any module of the package imports mxnet, gives 1.8-2x. A value the user set
# wins. (docs/mxnet.md, "Threads: OMP_NUM_THREADS")
_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
os.environ.setdefault("OMP_NUM_THREADS", str(_cores or 1))
