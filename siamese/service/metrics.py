"""Prometheus text metrics of the service (`GET /metrics`, text format 0.0.4), no client
library needed.

Names follow Prometheus conventions as TorchServe's metrics do (`ts_inference_requests_total`,
`ts_queue_latency_microseconds`), with the prefix `siamese_` and base units (seconds):

    siamese_requests_total{route, code}                counter    requests answered
    siamese_request_duration_seconds{route}             histogram  from request to response
    siamese_batch_size                                  histogram  images per network call
    siamese_batch_requests                              histogram  requests per network call
    siamese_queue_depth                                 gauge      requests waiting for the model
    siamese_inference_requests_rejected_total{reason}   counter    queue full, deadline passed
    siamese_stage_seconds{stage} (sum and count)        summary    where a request's time goes:
        read (receiving and parsing the body), decode (images to pixels), queue (waiting for
        the inference thread), model (its batch, run and handed back)
    siamese_gallery_identities / siamese_gallery_images gauge      the gallery served
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Callable, Dict, Sequence, Tuple

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Histogram:
    """Cumulative buckets, sum and count of observations, by label values."""

    def __init__(self, bounds: Sequence[float]):
        self.bounds = tuple(bounds)
        self.counts: Dict[Tuple, list] = defaultdict(lambda: [0] * (len(self.bounds) + 1))
        self.sums: Dict[Tuple, float] = defaultdict(float)

    def observe(self, value: float, labels: Tuple = ()) -> None:
        row = self.counts[labels]
        i = next((k for k, b in enumerate(self.bounds) if value <= b), len(self.bounds))
        row[i] += 1
        self.sums[labels] += value

    def lines(self, name: str, keys: Sequence[str]) -> list:
        out = []
        for labels, row in sorted(self.counts.items()):
            base = ",".join(f'{k}="{v}"' for k, v in zip(keys, labels))
            running = 0
            for bound, c in zip(self.bounds + (float("inf"),), row):
                running += c
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                out.append(f'{name}_bucket{{{base + "," if base else ""}le="{le}"}} {running}')
            tag = f"{{{base}}}" if base else ""
            out += [f"{name}_sum{tag} {self.sums[labels]:.6f}", f"{name}_count{tag} {running}"]
        return out


class Metrics:
    """Every figure of `GET /metrics`; `gauges` are read when the page is rendered."""

    def __init__(self, gauges: Dict[str, Tuple[str, Callable[[], float]]]):
        self._lock = threading.Lock()
        self.requests: Dict[Tuple[str, int], int] = defaultdict(int)
        self.rejected: Dict[str, int] = defaultdict(int)
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch = Histogram(BATCH_BUCKETS)
        self.batch_requests = Histogram(BATCH_BUCKETS)
        self.gauges = gauges
        self.stages: Dict[str, list] = defaultdict(lambda: [0.0, 0])

    def request(self, route: str, code: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, code)] += 1
            self.latency.observe(seconds, (route,))

    def batch_run(self, images: int, jobs: int) -> None:
        with self._lock:
            self.batch.observe(images)
            self.batch_requests.observe(jobs)

    def stage(self, name: str, seconds: float) -> None:
        with self._lock:
            row = self.stages[name]
            row[0] += seconds
            row[1] += 1

    def reject(self, reason: str) -> None:
        with self._lock:
            self.rejected[reason] += 1

    def render(self) -> str:
        with self._lock:
            out = ["# HELP siamese_requests_total Requests answered, by route and status code.",
                   "# TYPE siamese_requests_total counter"]
            out += [f'siamese_requests_total{{route="{r}",code="{c}"}} {n}'
                    for (r, c), n in sorted(self.requests.items())]
            out += ["# HELP siamese_request_duration_seconds Time from request to response.",
                    "# TYPE siamese_request_duration_seconds histogram"]
            out += self.latency.lines("siamese_request_duration_seconds", ("route",))
            out += ["# HELP siamese_batch_size Images per network call.",
                    "# TYPE siamese_batch_size histogram"]
            out += self.batch.lines("siamese_batch_size", ())
            out += ["# HELP siamese_batch_requests Requests served per network call.",
                    "# TYPE siamese_batch_requests histogram"]
            out += self.batch_requests.lines("siamese_batch_requests", ())
            out += ["# HELP siamese_inference_requests_rejected_total Requests refused before "
                    "the model: queue full, deadline passed.",
                    "# TYPE siamese_inference_requests_rejected_total counter"]
            out += [f'siamese_inference_requests_rejected_total{{reason="{r}"}} {n}'
                    for r, n in sorted(self.rejected.items())]
            out += ["# HELP siamese_stage_seconds Time spent in each stage of a request.",
                    "# TYPE siamese_stage_seconds summary"]
            for name, (total, n) in sorted(self.stages.items()):
                out += [f'siamese_stage_seconds_sum{{stage="{name}"}} {total:.6f}',
                        f'siamese_stage_seconds_count{{stage="{name}"}} {n}']
        for name, (help_text, read) in self.gauges.items():
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {read():g}"]
        return "\n".join(out) + "\n"
