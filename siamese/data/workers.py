"""Batches decoded and augmented in worker processes while the network trains (data.workers).

Workers are forked, so they share the parent's images (an array, the decoded cache's memory
map, or a StreamImages that decodes on access) without copying or pickling them; each task
sends only its batch's rows and gets back numpy arrays. Results come back in order, a few
batches ahead. A worker that dies (killed, out of memory) stops the run with a RunError
(exit 1) naming data.workers, never a hang.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Dict, Iterable, Iterator

from ..errors import RunError

log = logging.getLogger(__name__)

AHEAD = 2  # batches queued per worker
POLL_S = 0.5  # how often a wait for a batch checks that the workers are alive

_JOBS: Dict[int, Callable] = {}  # filled before the fork, so workers inherit the functions


def _quiet() -> None:
    """Workers leave SIGINT/SIGTERM to the training process, which stops them itself; on Linux
    they die with it (PR_SET_PDEATHSIG), so a killed trainer leaves no orphans."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run(job: int, args: tuple):
    return _JOBS[job](*args)


class WorkerDied(RunError):
    """A decoding worker process ended without finishing its batch."""


def _died() -> WorkerDied:
    return WorkerDied("data.workers: a batch-decoding worker process died (killed or out of "
                      "memory); training stopped, the last checkpoint is kept. Resume with "
                      "--resume, or set data.workers: 0")


class WorkerPool:
    """`workers` forked processes that run `fn` on tasks, kept for the whole run.

    Args:
        fn: returns picklable values (numpy arrays); runs in a child process, which inherits
            everything `fn` refers to at the time of the first `map`.
    """

    _next = 0

    def __init__(self, fn: Callable, workers: int):
        WorkerPool._next += 1
        self.job, self.workers, self.broken = WorkerPool._next, workers, False
        _JOBS[self.job] = fn
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                        initializer=_quiet)

    def _submit(self, task: tuple):
        try:
            return self.pool.submit(_run, self.job, task)
        except BrokenProcessPool:
            raise _died() from None

    def map(self, tasks: Iterable[tuple]) -> Iterator:
        """fn(*task) for every task, in order, `AHEAD` per worker computed ahead.

        Raises:
            WorkerDied: a worker process died.
        """
        it = iter(tasks)
        queue = [self._submit(t) for _, t in zip(range(AHEAD * self.workers), it)]
        try:
            while queue:
                out = self._result(queue.pop(0))
                queue += [self._submit(t) for _, t in zip(range(1), it)]
                yield out
        finally:  # an epoch left early (resume skips, a signal): drop what is queued
            for f in queue:
                f.cancel()

    def _result(self, future):
        """The future's value; WorkerDied as soon as a worker process has ended.

        The executor notices a dead worker by itself, unless it died while sending a result:
        its manager thread then waits forever for the rest of the message (CPython 3.11; seen
        here in about one kill in eight). Polled here instead, and the manager is unblocked by
        closing our copy of the result pipe's write end, which ends its read."""
        while True:
            try:
                return future.result(timeout=POLL_S)
            except FutureTimeout:
                if any(p.exitcode is not None for p in self._processes()):
                    self.broken = True
                    with contextlib.suppress(AttributeError, OSError):  # private in 3.8-3.11
                        self.pool._result_queue._writer.close()
                    raise _died() from None
            except BrokenProcessPool:
                self.broken = True
                raise _died() from None

    def _processes(self) -> list:
        return list((getattr(self.pool, "_processes", None) or {}).values())

    def close(self) -> None:
        if self.broken:  # never wait for a manager thread that may be stuck
            for p in self._processes():
                p.kill()
        self.pool.shutdown(wait=not self.broken, cancel_futures=True)
        _JOBS.pop(self.job, None)


def in_workers(fn: Callable, tasks: Iterable[tuple], workers: int) -> Iterator:
    """fn(*task) for every task, in order, from a pool of `workers` processes made for them."""
    pool = WorkerPool(fn, workers)
    try:
        yield from pool.map(tasks)
    finally:
        pool.close()
