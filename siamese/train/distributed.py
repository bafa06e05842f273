"""Multi-machine training on MXNet's parameter server (kvstore dist_sync / dist_device_sync).

Roles (scheduler, servers, workers) come from the DMLC_* environment variables that
`python -m siamese.launch` (or MXNet's tools/launch.py) sets. Each worker trains on its own
shard of every epoch's pairs; all workers run the same number of steps (uneven workers hang).
Only rank 0 writes the run directory; the others write to a scratch folder that is removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from typing import Optional

import mxnet as mx

from ..errors import UserError
from ..formats.rundir import RunDir

SCRATCH = "siamese-worker"

_KV: dict = {}


def is_distributed(kind: str) -> bool:
    return kind.startswith("dist")


def get_kvstore(kind: str) -> Optional[mx.kvstore.KVStore]:
    """The process's one distributed kvstore (created on first use), or None if not dist."""
    if not is_distributed(kind):
        return None
    if kind not in _KV:
        if os.environ.get("DMLC_ROLE") != "worker":
            raise UserError(f"train.kvstore: {kind} needs MXNet's parameter-server roles; start "
                            f"the run with python -m siamese.launch --workers N --servers M "
                            f"train.py CONFIG (README: Several machines)")
        _KV[kind] = mx.kv.create(kind)
    return _KV[kind]


def rank_and_size(kind: str) -> tuple:
    """(rank, number of workers): (0, 1) when not distributed."""
    kv = get_kvstore(kind)
    return (kv.rank, kv.num_workers) if kv is not None else (0, 1)


def params_digest(blocks: dict) -> str:
    """sha256 over the trained parameters' bytes in structural-name order: equal digests on two
    workers mean bitwise-identical weights. BatchNorm running statistics are left out: each
    worker (and device) keeps its own, from the batches it saw (rank 0's are exported)."""
    h = hashlib.sha256()
    for prefix, block in sorted(blocks.items()):
        for name, p in sorted(block._collect_params_with_prefix().items()):
            if p.grad_req == "null":
                continue
            h.update(f"{prefix}.{name}".encode())
            h.update(p.data(p.list_ctx()[0]).asnumpy().tobytes())
    return h.hexdigest()


def worker_scratch(kind: str, resumed: Optional[RunDir] = None) -> Optional[RunDir]:
    """A scratch run directory, created here, for a distributed worker other than rank 0 (only
    rank 0 writes the real run directory); None otherwise. Remove it with `remove_scratch`.

    resumed: the run directory being resumed: its best checkpoint is copied in, so every
        worker ends with the same best epoch (the run directory must be readable by every
        worker: one machine, or a shared file system).
    """
    if not is_distributed(kind):
        return None
    rank, _ = rank_and_size(kind)
    if rank == 0:
        return None
    run = RunDir(tempfile.mkdtemp(prefix=f"{SCRATCH}{rank}-"))
    run.checkpoints.mkdir()
    run.pairs.mkdir()
    if resumed is not None and resumed.checkpoint("best").is_file():
        shutil.copyfile(resumed.checkpoint("best"), run.checkpoint("best"))
    return run


def remove_scratch(run: Optional[RunDir]) -> None:
    """Remove a folder `worker_scratch` made (never one the user named)."""
    if run is not None:
        shutil.rmtree(run.root, ignore_errors=True)
