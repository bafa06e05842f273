"""A plain HTTP client for the service tests (the standard library only), and starting the
real server in a subprocess on a free loopback port."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT

from siamese.commands.bench.loadgen import multipart  # noqa: F401  the tests' bodies too


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Server:
    """`python -m siamese.serve ARGS` on a free port; `call` talks to it."""

    def __init__(self, args: list, log: Path, env: dict | None = None):
        self.port = free_port()
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "siamese.serve", *map(str, args), "--port", str(self.port)],
            stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT,
            env=dict(os.environ, **(env or {})))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {log.read_text()}")
            try:
                if self.call("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready: {log.read_text()}")

    def call(self, method: str, path: str, files: dict | None = None, json_body=None,
             body: bytes | None = None, headers: dict | None = None, timeout: float = 30):
        """(status, headers, parsed JSON or bytes)."""
        headers = dict(headers or {})
        if files is not None:
            body, headers["Content-Type"] = multipart(files)
        elif json_body is not None:
            body, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            kind = r.getheader("content-type", "")
            return r.status, dict(r.getheaders()), json.loads(data) if "json" in kind else data
        finally:
            conn.close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()
