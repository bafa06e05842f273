"""A bounded HTTP load generator on loopback: its own asyncio client (keep-alive connections,
prebuilt requests, no HTTP library), so that the client costs as little CPU as possible on a
machine it shares with the server.

Each of `clients` connections sends requests one after another (closed loop) until `requests`
are answered or `seconds` have passed; latency is timed per request, from the first byte sent
to the last byte read.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Callable, List, Optional, Tuple

import numpy as np

HOST = "127.0.0.1"  # never anything else


def multipart(fields: dict) -> Tuple[bytes, str]:
    """(body, content type) of {name: bytes or [bytes]} as multipart/form-data files."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, values in fields.items():
        for k, data in enumerate(values if isinstance(values, list) else [values]):
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                         f'filename="{name}{k}"\r\nContent-Type: application/octet-stream\r\n'
                         f'\r\n'.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), \
        f"multipart/form-data; boundary={boundary}"


def request(method: str, path: str, body: bytes = b"", kind: Optional[str] = None,
            length: Optional[int] = None) -> bytes:
    """The bytes of one HTTP/1.1 request (Content-Length `length` overrides the body's)."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}",
            f"Content-Length: {len(body) if length is None else length}"]
    if kind:
        head.append(f"Content-Type: {kind}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_response(reader) -> Tuple[int, bytes, bool]:
    """(status, body, the server keeps the connection) of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in
               (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection", "").lower() != "close"


async def _client(port: int, pick: Callable[[int], Tuple[bytes, Callable]], budget: list,
                  stop_at: float, out: list) -> None:
    """One connection: requests until the shared budget or the time is spent. `pick(i)` gives
    (request bytes, check(status, body) -> bool)."""
    reader = writer = None
    while budget[0] > 0 and time.perf_counter() < stop_at:
        budget[0] -= 1
        i = budget[0]
        data, check = pick(i)
        if writer is None:
            reader, writer = await asyncio.open_connection(HOST, port)
        start = time.perf_counter()
        try:
            writer.write(data)
            await writer.drain()
            status, body, keep = await read_response(reader)
            out.append((time.perf_counter() - start, bool(check(status, body)), status))
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            out.append((time.perf_counter() - start, False, type(e).__name__))
            keep = False
        if not keep:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _load(port: int, pick, clients: int, requests: int, seconds: float) -> tuple:
    out: list = []
    budget = [requests]
    start = time.perf_counter()
    await asyncio.gather(*[_client(port, pick, budget, start + seconds, out)
                           for _ in range(clients)])
    return out, time.perf_counter() - start


def load(port: int, pick, clients: int, requests: int, seconds: float) -> dict:
    """Closed-loop load: requests/s, p50/p99 latency (ms), errors (a failed check, a refused
    or broken connection) and their statuses."""
    out, wall = asyncio.run(_load(port, pick, clients, requests, seconds))
    ms = np.array([o[0] for o in out]) * 1e3
    bad = [o[2] for o in out if not o[1]]
    return {"clients": clients, "requests": len(out), "seconds": wall,
            "requests_per_s": len(out) / wall if wall else 0.0,
            "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
            "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
            "errors": len(bad), "error_statuses": sorted({str(b) for b in bad})}


def stages(metrics_text: str) -> dict:
    """{stage: (sum seconds, count)} of the service's siamese_stage_seconds summary."""
    out: dict = {}
    for line in metrics_text.splitlines():
        if line.startswith("siamese_stage_seconds_"):
            name, value = line.rsplit(" ", 1)
            stage = name.split('stage="')[1].split('"')[0]
            row = out.setdefault(stage, [0.0, 0])
            row[0 if "_sum" in name else 1] = float(value)
    return out


def stage_means(before: dict, after: dict, requests: int) -> dict:
    """Mean milliseconds per request in each stage between two readings."""
    return {s: (after[s][0] - before.get(s, [0.0, 0])[0]) * 1e3 / max(requests, 1)
            for s in after}


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        kb = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmRSS:"))
    return kb / 1024


def ok_json(status: int, body: bytes) -> bool:
    return status == 200


def expect(statuses: List[int]):
    return lambda status, body: status in statuses
