"""The optimizer and Trainer of a run: gradients summed over devices (and machines), the update
done locally so its state is ours to checkpoint."""

from __future__ import annotations

from typing import Callable, Dict, List

import mxnet as mx
from mxnet import gluon

from ..errors import UserError
from .distributed import get_kvstore


def _momentum(c) -> dict:
    return {"momentum": c.momentum}


OPTIMIZER_ARGS: Dict[str, Callable] = {  # optimizer name -> its extra arguments from the config
    "adam": lambda c: {}, "rmsprop": lambda c: {}, "adagrad": lambda c: {},
    "sgd": _momentum, "nag": _momentum,
}


def build_trainer(params: list, cfg, n_devices: int) -> gluon.Trainer:
    """A Trainer for the `train` section; gradients summed over devices by the kvstore, and
    the update done locally (update_on_kvstore=False) so its state is ours to checkpoint."""
    if cfg.optimizer not in OPTIMIZER_ARGS:
        raise UserError(f"train.optimizer: unknown {cfg.optimizer!r} "
                        f"(valid: {', '.join(OPTIMIZER_ARGS)})")
    args = {"learning_rate": cfg.lr, "wd": cfg.wd, **OPTIMIZER_ARGS[cfg.optimizer](cfg)}
    dist = get_kvstore(cfg.kvstore)
    if dist is not None:
        return WorkerSumTrainer(params, cfg.optimizer, args, dist)
    kv = cfg.kvstore if n_devices > 1 else None
    return gluon.Trainer(params, cfg.optimizer, args, kvstore=kv,
                         update_on_kvstore=False if kv else None)


class WorkerSumTrainer(gluon.Trainer):
    """A Trainer that sums gradients over workers through a distributed kvstore.

    Gluon's own dist path keeps the initial weights and the summed gradients under the same
    keys and pulls the weights lazily inside the first step: a slow worker's pull could then
    receive summed gradients as weights (seen here: workers diverged in about one run in four).
    Here the store's keys only ever hold gradients, initialised by every worker and fenced by a
    barrier before any push; the weights need no broadcast, since every worker builds them from
    the same seed. Each worker then applies the same update locally. One device per worker.
    """

    def __init__(self, params, optimizer, args, kv: mx.kvstore.KVStore):
        super().__init__(params, optimizer, args, kvstore=None)
        self._workers_kv = kv
        for i, p in enumerate(self._params):
            if p.grad_req != "null":
                kv.init(i, mx.nd.zeros(p.shape, ctx=p.list_ctx()[0], dtype=p.dtype))
        mx.nd.waitall()
        kv._barrier()

    def _allreduce_grads(self):
        for i, p in enumerate(self._params):
            if p.grad_req != "null":
                self._workers_kv.pushpull(i, p.list_grad(), priority=-i)


def init_amp(ctxs: List[mx.Context]) -> None:
    """float16 AMP on GPUs (before the model is built); refused on CPU, where MXNet's AMP
    (bfloat16) trained slower than float32 (docs/mxnet.md, "Mixed precision on the CPU")."""
    if any(c.device_type != "gpu" for c in ctxs):
        raise UserError("train.amp: mixed precision needs GPUs (device: gpu...); on CPU it is "
                        "refused because MXNet's CPU AMP trained slower than float32 here")
    from mxnet.contrib import amp

    amp.init(target_dtype="float16")
