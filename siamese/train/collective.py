"""Decisions every worker of a distributed run takes together, so that none waits for another
forever: whether any worker saw a non-finite loss or gradient (all skip, or all stop), whether
any worker was signalled (all stop at the same step and checkpoint), whether to stop early
(taken once, reaching every worker); and BatchNorm running statistics averaged over workers
before each validation, so every worker validates and exports the same model.

Each exchange is one pushpull of a few numbers through the run's kvstore: every worker pushes
its own, every worker pulls the sum. A single process uses `Local`, which decides alone.
"""

from __future__ import annotations

import signal
from typing import Dict, List, Optional

import mxnet as mx

FLAGS_KEY = 1_000_000  # keys above the parameters' (0..n-1)
STATS_KEY = 2_000_000
STATS_SUFFIXES = ("running_mean", "running_var")
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def running_stats(blocks: Dict[str, mx.gluon.Block]) -> List[mx.gluon.Parameter]:
    """The BatchNorm running statistics of the blocks, each once, in a fixed order."""
    seen: dict = {}
    for prefix in sorted(blocks):
        for name, p in sorted(blocks[prefix]._collect_params_with_prefix().items()):
            if name.endswith(STATS_SUFFIXES):
                seen.setdefault(id(p), p)
    return list(seen.values())


class Local:
    """One process: every decision is its own."""

    workers = 1

    def agree(self, nonfinite: bool, stop) -> bool:
        """Whether to skip this step (any worker saw a non-finite value)."""
        return nonfinite

    def stop_signal(self, stop) -> Optional[int]:
        """The signal every worker stops for, or None."""
        return stop.requested

    def any(self, flag: bool) -> bool:
        return flag

    def average_stats(self, blocks: dict) -> None:
        pass


class Workers(Local):
    """The workers of a dist_sync run. Create it on every worker before training (it
    initialises its kvstore keys and waits at a barrier).

    Args:
        kv: the distributed kvstore.
        blocks: {"model": ..., "loss": ...}: their BatchNorm statistics are averaged.
    """

    def __init__(self, kv: mx.kvstore.KVStore, blocks: dict):
        self.kv, self.workers = kv, kv.num_workers
        self.stats = running_stats(blocks)
        self.agreed: Optional[int] = None
        kv.init(FLAGS_KEY, mx.nd.zeros((1 + len(SIGNALS),)))
        for i, p in enumerate(self.stats):
            kv.init(STATS_KEY + i, mx.nd.zeros(p.shape, dtype=p.dtype))
        mx.nd.waitall()
        kv._barrier()

    def _sum(self, values: List[float]) -> List[float]:
        buf = mx.nd.array(values)
        self.kv.pushpull(FLAGS_KEY, buf, out=buf)
        return buf.asnumpy().tolist()

    def agree(self, nonfinite: bool, stop) -> bool:
        """One exchange per step: [non-finite here, SIGINT here, SIGTERM here], summed. A signal
        on any worker becomes the signal every worker stops for after this step."""
        mine = [float(nonfinite)] + [float(stop.requested == s) for s in SIGNALS]
        total = self._sum(mine)
        for s, n in zip(SIGNALS[::-1], total[:0:-1]):  # SIGTERM wins over SIGINT
            if n > 0 and self.agreed is None:
                self.agreed = int(s)
        return total[0] > 0

    def stop_signal(self, stop) -> Optional[int]:
        """Only the agreed signal counts: a signal that arrived after this step's exchange is
        acted on at the next one, by every worker together."""
        return self.agreed

    def any(self, flag: bool) -> bool:
        return self._sum([float(flag), 0.0, 0.0])[0] > 0

    def average_stats(self, blocks: dict) -> None:
        """Replace every worker's BatchNorm running statistics by their mean over workers."""
        for i, p in enumerate(self.stats):
            buf = p.data(p.list_ctx()[0]).copy()
            self.kv.pushpull(STATS_KEY + i, buf, out=buf)
            p.set_data(buf / self.workers)
        mx.nd.waitall()


def collective(kv: Optional[mx.kvstore.KVStore], blocks: dict) -> Local:
    """Workers(kv, blocks) in a distributed run, else Local()."""
    return Workers(kv, blocks) if kv is not None else Local()
