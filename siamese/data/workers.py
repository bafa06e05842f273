"""Batches decoded and augmented in worker processes while the network trains (data.workers).

Workers are forked, so they share the parent's images (an array, the decoded cache's memory
map, or a StreamImages that decodes on access) without copying or pickling them; each task
sends only its batch's rows and gets back numpy arrays. Results come back in order, a few
batches ahead. A worker that dies (killed, out of memory) stops the run with a RunError
(exit 1) naming data.workers, never a hang.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Dict, Iterable, Iterator

from ..errors import RunError

log = logging.getLogger(__name__)

AHEAD = 2  # batches queued per worker

_JOBS: Dict[int, Callable] = {}  # filled before the fork, so workers inherit the functions


def _quiet() -> None:
    """Workers leave SIGINT/SIGTERM to the training process, which stops them itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _run(job: int, args: tuple):
    return _JOBS[job](*args)


class WorkerDied(RunError):
    """A decoding worker process ended without finishing its batch."""


def in_workers(fn: Callable, tasks: Iterable[tuple], workers: int) -> Iterator:
    """fn(*task) for every task, in order, computed by `workers` forked processes.

    Args:
        fn: returns picklable values (numpy arrays); runs in a child process.
        tasks: argument tuples, small (they are pickled to the workers).
    Raises:
        WorkerDied: a worker process died; the others are stopped.
    """
    job = id(fn)
    _JOBS[job] = fn
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_quiet)
    try:
        queue, it = [], iter(tasks)
        for task in it:
            queue.append(pool.submit(_run, job, task))
            if len(queue) >= AHEAD * workers:
                break
        while queue:
            head = queue.pop(0)
            try:
                out = head.result()
            except BrokenProcessPool:
                raise WorkerDied("data.workers: a batch-decoding worker process died (killed "
                                 "or out of memory); training stopped, the last checkpoint is "
                                 "kept. Resume with --resume, or set data.workers: 0") from None
            for task in it:
                queue.append(pool.submit(_run, job, task))
                break
            yield out
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _JOBS.pop(job, None)
