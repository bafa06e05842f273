"""The one inference thread that owns the model, a bounded queue in front of it, and dynamic
batching.

Requests put jobs in the queue: a network and its inputs (n images), or a call to run alone on
the thread (a gallery change, which embeds the enrolled images with the same networks). The
thread takes the oldest job, then, for at most `max_wait` seconds after it, every further job
for the same network until `max_batch` images are gathered, runs them as one batch and hands
each job its rows. A full queue refuses at once (the service answers 503 with Retry-After);
a job whose deadline passed before it ran is dropped unrun.
"""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np


class QueueFull(Exception):
    """The queue holds `capacity` jobs: the caller should come back later."""


class Expired(Exception):
    """The job's deadline passed before the thread reached it."""


@dataclass
class Job:
    """A network (`role`) on float32 inputs (each (n, C, H, W)), or a `call` run alone."""

    role: Optional[str]
    inputs: List[np.ndarray]
    deadline: float
    call: Optional[Callable[[], object]] = None
    future: Future = field(default_factory=Future)
    started: float = 0.0  # time.monotonic() when the thread took it

    @property
    def n(self) -> int:
        return len(self.inputs[0]) if self.inputs else 0


class Batcher:
    """Runs jobs on one thread: `submit` from any thread, results through `job.future`.

    Args:
        run: run(role, inputs) -> outputs (N, ...) on the model (siamese.service.engine).
        max_batch: images per network call at most.
        max_wait: seconds the thread waits for more jobs after the first of a batch.
        capacity: jobs waiting (queued or gathered, not yet running) at most.
        observe: observe(batch images, jobs) after each network call (metrics).
    """

    def __init__(self, run: Callable, max_batch: int, max_wait: float, capacity: int,
                 observe: Callable[[int, int], None] = lambda n, jobs: None):
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait
        self.capacity, self.observe = capacity, observe
        self._queue: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._waiting = 0  # queued + gathered into the batch being formed
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="siamese-inference",
                                        daemon=True)

    @property
    def depth(self) -> int:
        """Jobs accepted and not yet running."""
        return self._waiting

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> Future:
        """Queue a job; QueueFull when `capacity` jobs are already waiting."""
        with self._cond:
            if self._stop:
                raise QueueFull("the service is stopping")
            if self._waiting >= self.capacity:
                raise QueueFull(f"{self._waiting} requests are waiting")
            self._waiting += 1
            self._queue.append(job)
            self._cond.notify()
        return job.future

    def stop(self, timeout: float) -> None:
        """Finish the jobs already queued (within `timeout` seconds), then end the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)

    def _next_batch(self) -> List[Job]:
        """The next jobs to run together (called holding the lock); [] when stopping."""
        while not self._queue:
            if self._stop:
                return []
            self._cond.wait()
        first = self._queue.popleft()
        batch, total = [first], first.n
        if first.call is not None:
            return batch
        until = time.monotonic() + self.max_wait
        while total < self.max_batch:
            if self._queue:
                nxt = self._queue[0]
                if nxt.call is not None or nxt.role != first.role or \
                        total + nxt.n > self.max_batch:
                    break
                batch.append(self._queue.popleft())
                total += nxt.n
                continue
            left = until - time.monotonic()
            if left <= 0 or self._stop:
                break
            self._cond.wait(left)
        return batch

    def _loop(self) -> None:
        while True:
            with self._cond:
                batch = self._next_batch()
                self._waiting -= len(batch)
            if not batch:
                return
            now = time.monotonic()
            live = [j for j in batch
                    if j.deadline > now and j.future.set_running_or_notify_cancel()]
            for j in batch:
                if j.deadline <= now and not j.future.done():
                    j.future.set_exception(Expired())
            for j in live:
                j.started = now
            if live:
                self._execute(live)

    def _execute(self, jobs: List[Job]) -> None:
        try:
            if jobs[0].call is not None:
                jobs[0].future.set_result(jobs[0].call())
                return
            inputs = [np.concatenate([j.inputs[k] for j in jobs]) if len(jobs) > 1
                      else jobs[0].inputs[k] for k in range(len(jobs[0].inputs))]
            out = self.run(jobs[0].role, inputs)
            self.observe(len(inputs[0]), len(jobs))
            start = 0
            for j in jobs:
                j.future.set_result(out[start:start + j.n])
                start += j.n
        except BaseException as e:  # noqa: BLE001  handed to the requests; the thread goes on
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(e)
