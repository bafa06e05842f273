"""What a running service holds (the export, the inference thread, the gallery, limits,
metrics), and the one way a request reaches the model."""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from .batcher import Batcher, Expired, Job, QueueFull
from .engine import Engine
from .gallery import GalleryStore
from .inputs import ClientError, Limits, guard_pillow
from .metrics import Metrics

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Busy(Exception):
    """The queue is full (503, Retry-After) or a deadline passed (504)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Options:
    """The service's knobs (siamese.commands.serve has their defaults and meaning)."""

    max_batch: int = 32
    max_wait_ms: float = 1.0
    queue: int = 256
    timeout_s: float = 10.0
    grace_s: float = 10.0
    limits: Limits = field(default_factory=Limits)
    host: str = "127.0.0.1"
    token: Optional[str] = None


class Service:
    """An engine behind a batcher, an optional gallery, and the request plumbing."""

    def __init__(self, engine: Engine, store: Optional[GalleryStore], options: Options):
        self.engine, self.store, self.options = engine, store, options
        guard_pillow(options.limits.max_pixels)  # process-wide: Pillow's own bomb guard
        gauges = {"siamese_queue_depth": ("Requests waiting for the model.",
                                          lambda: self.batcher.depth)}
        if store is not None:
            gauges["siamese_gallery_identities"] = ("Identities enrolled.",
                                                    lambda: len(store.gallery.identities))
            gauges["siamese_gallery_images"] = ("Images enrolled.",
                                                lambda: len(store.gallery.paths))
        self.metrics = Metrics(gauges)
        self.batcher = Batcher(engine.run, options.max_batch, options.max_wait_ms / 1e3,
                               options.queue, self.metrics.batch_run)
        self.ready = False

    def start(self) -> None:
        """Start the inference thread; its first job plans every graph (then /readyz is 200)."""
        self.batcher.start()
        fut = self.batcher.submit(Job(None, [], float("inf"), call=self.engine.warm_up))
        fut.add_done_callback(lambda f: setattr(self, "ready", f.exception() is None))

    def stop(self) -> None:
        self.ready = False
        self.batcher.stop(self.options.grace_s)

    async def on_thread(self, job: Job, timeout: float):
        """The result of a job run by the inference thread; Busy when refused or late."""
        try:
            fut = self.batcher.submit(job)
        except QueueFull as e:
            self.metrics.reject("queue_full")
            raise Busy(503, f"busy: {e}; retry later") from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except (asyncio.TimeoutError, Expired):
            self.metrics.reject("deadline")
            raise Busy(504, f"no answer within the deadline ({timeout:g} s)") from None

    async def infer(self, role: str, inputs: List[np.ndarray]) -> np.ndarray:
        t, start = self.options.timeout_s, time.monotonic()
        job = Job(role, inputs, start + t)
        out = await self.on_thread(job, t)
        self.metrics.stage("queue", job.started - start)
        self.metrics.stage("model", time.monotonic() - job.started)
        return out

    async def embed(self, images: np.ndarray, side: str) -> np.ndarray:
        """Embeddings (n, E) of uint8 images shown on `side`."""
        e = self.engine
        if not e.embeds:
            raise ClientError(409, f"a {e.meta['kind']} export scores pairs and has no "
                                   f"embeddings")
        return await self.infer(e.role(side), [e.tensor(images, side)])

    async def score(self, left: np.ndarray, right: np.ndarray) -> float:
        """The export's score of one pair of uint8 images (H, W, C)."""
        e = self.engine
        a, b = e.tensor(left[None], "left"), e.tensor(right[None], "right")
        if not e.embeds:
            return float((await self.infer(e.role("left"), [a, b])).reshape(-1)[0])
        if e.role("left") == e.role("right"):
            out = await self.infer(e.role("left"), [np.concatenate([a, b])])
            e1, e2 = out[:1], out[1:]
        else:
            e1, e2 = await asyncio.gather(self.infer(e.role("left"), [a]),
                                          self.infer(e.role("right"), [b]))
        return float(e.score_pairs(e1, e2)[0])

    def gallery(self) -> GalleryStore:
        if self.store is None:
            raise ClientError(404, "no gallery: start the service with --gallery FILE")
        return self.store

    def check_token(self, authorization: Optional[str]) -> None:
        """Enrolment needs `Authorization: Bearer TOKEN` when a token is set; without one it
        is refused unless the service listens on loopback only."""
        token = self.options.token
        if token is None:
            if self.options.host not in LOOPBACK:
                raise ClientError(403, f"enrolment is disabled: the service listens on "
                                       f"{self.options.host} and was started without --token")
            return
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise ClientError(401, "enrolment needs the header Authorization: Bearer TOKEN")
