"""`python -m siamese.bench --only http`: the service under load and under attack, beside the
offline serving bench of the same exports, in one run.

For 32x32 and 105x105: the default `convnet` branch exported as float, fused and int8 (the
graphs of siamese.commands.bench.serving, with a model.json), each served by `python -m
siamese.serve` on a free 127.0.0.1 port; `POST /v1/embed` of one PNG image per request at 1, 8
and 32 concurrent clients (siamese.commands.bench.loadgen): requests/s, p50/p99 latency,
errors, and the service's own account of where a request's time goes. Then a fault run on the
32x32 float service: every malformed request of issue 30, at least 1,000 of each, mixed with
good verify requests (each good answer must equal the first), resident memory sampled.
"""

from __future__ import annotations

import http.client
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ...export.optimize import float_graph, save_graph
from ...export.rewrites import BACKEND, fuse, quantize
from ...formats.bundle import FORMAT
from .faults import fault_run
from .loadgen import HOST, load, multipart, request, stage_means, stages
from .serving import EMBEDDING, _branch

CLIENTS = (1, 8, 32)
SECTIONS = {"steps": "training steps, fit loop, inference",  # python -m siamese.bench --only
            "serving": "float/fused/int8/ONNX exports",
            "triplet": "mined-triplet step, new vs old",
            "http": "the service under load and under attack, beside serving's figures",
            "http-options": "the service's --max-batch / --max-wait-ms at 105x105"}


def write_exports(size: int, out: Path) -> dict:
    """{kind: export dir} of float, fused and int8 exports of the bench's branch at size."""
    rng = np.random.default_rng(0)
    x256 = rng.normal(size=(256, 1, size, size)).astype(np.float32)
    sym, args, aux = float_graph(_branch(size), x256[:1], out)
    graphs = {"float": (sym, args, aux), "fused": fuse(sym, args, aux)[:3],
              "int8": quantize(sym, args, aux, x256, "naive")[:3]}
    meta = {"format": FORMAT, "architecture": "siamese", "kind": "branch",
            "input": {"name": "data", "names": ["data"], "layout": "NCHW",
                      "shape": [-1, 1, size, size], "dtype": "float32"},
            "preprocess": {"color": "L", "resize": [size, size], "resample": "bilinear",
                           "scale": 1 / 255, "mean": [0.5], "std": [0.5], "right_view": "none"},
            "embedding_size": EMBEDDING,
            "score": {"name": "euclidean", "higher_is_similar": False, "threshold": 1.0}}
    dirs = {}
    for kind, (s, a, x) in graphs.items():
        folder = out / f"{kind}-{size}"
        folder.mkdir()
        save_graph(folder, s, a, x)
        extra = {} if kind == "float" else {"requires": [BACKEND], "optimized": {"kind": kind}}
        (folder / "model.json").write_text(json.dumps(dict(meta, **extra)))
        dirs[kind] = folder
    return dirs


def png(size: int, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def get(port: int, path: str) -> tuple:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


class Served:
    """`python -m siamese.serve EXPORT_DIR` in a subprocess, on a free loopback port."""

    def __init__(self, export_dir: Path, *options: str):
        import socket

        with socket.socket() as s:
            s.bind((HOST, 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen([sys.executable, "-m", "siamese.serve", str(export_dir),
                                      "--port", str(self.port), *options],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.proc.stderr.read().decode()[-500:]}")
            try:
                if get(self.port, "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("serve did not become ready in 60 s")

    def metrics(self) -> str:
        return get(self.port, "/metrics")[1].decode()

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(30)


def offline(size: int, quick: bool) -> dict:
    """siamese.commands.bench.serving at this size, in its own process (as --only serving)."""
    out = subprocess.run([sys.executable, "-m", "siamese.bench", "--one",
                          json.dumps(["serving", size, quick])],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def served_load(export_dir: Path, size: int, quick: bool, options: tuple) -> dict:
    """The service of one export at 1, 8 and 32 clients, with the stage means."""
    body, kind = multipart({"images": png(size)})
    data = request("POST", "/v1/embed", body, kind)

    def pick(i):
        return data, lambda status, _: status == 200

    server = Served(export_dir, *options)
    try:
        load(server.port, pick, 4, 200, 10)  # warm the connections and the batches
        levels = []
        for clients in CLIENTS:
            before = stages(server.metrics())
            n = (300 if quick else 1500) * (1 if clients == 1 else 2)
            r = load(server.port, pick, clients, n, 10 if quick else 30)
            r["stages_ms"] = stage_means(before, stages(server.metrics()), r["requests"])
            levels.append(r)
        return {"levels": levels, "exit": server.stop()}
    except BaseException:
        server.stop()
        raise


def floor(server: Served, quick: bool) -> list:
    """`GET /healthz` (no body, no model) at 1 and 32 clients: what the HTTP stack alone costs
    on this machine, with this client."""
    data = request("GET", "/healthz")
    return [load(server.port, lambda i: (data, lambda status, _: status == 200), clients,
                 1000 if quick else 3000, 30) for clients in (1, 32)]


def collect_http(quick: bool, options: tuple = ()) -> dict:
    """Offline and served figures of float, fused and int8 at 32x32 and 105x105, then the
    fault run."""
    out = {"options": list(options), "sizes": []}
    with tempfile.TemporaryDirectory() as tmp:
        for size in (32, 105):
            dirs = write_exports(size, Path(tmp))
            off = offline(size, quick)
            row = {"size": size, "offline": off["kinds"], "served": {}}
            for kind, folder in dirs.items():
                row["served"][kind] = served_load(folder, size, quick, options)
                print(f"  http {size}x{size} {kind}: " + ", ".join(
                    f"{lv['clients']} clients {lv['requests_per_s']:.0f}/s"
                    for lv in row["served"][kind]["levels"]), file=sys.stderr)
            out["sizes"].append(row)
            if size == 32:
                server = Served(dirs["float"], *options)
                try:
                    out["floor"] = floor(server, quick)
                    out["faults"] = fault_run(server, png(32), 200 if quick else 1000)
                finally:
                    out["faults"]["exit"] = server.stop()
    return out


SWEEP = ((32, 0.0), (32, 1.0), (32, 4.0), (8, 0.0), (64, 0.0))  # (max batch, max wait ms)


def sweep(quick: bool) -> dict:
    """The 105x105 float service at 1 and 32 clients for several --max-batch / --max-wait-ms:
    how the defaults were chosen."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_exports(105, Path(tmp))["float"]
        for batch, wait in SWEEP:
            r = served_load(folder, 105, quick, ("--max-batch", str(batch), "--max-wait-ms",
                                                 str(wait)))
            rows.append({"max_batch": batch, "max_wait_ms": wait, "levels": r["levels"]})
    return {"size": 105, "kind": "float", "rows": rows}


def sweep_table(r: dict) -> list:
    if "http_sweep" not in r:
        return []
    lines = ["", "service options, 105^2 float (POST /v1/embed): requests/s and p50 ms",
             f"{'max batch':>9} {'max wait':>8} " + " ".join(
                 f"{c:>3} clients: req/s  p50 ms" for c in CLIENTS)]
    for row in r["http_sweep"]["rows"]:
        lines.append(f"{row['max_batch']:>9} {row['max_wait_ms']:>6}ms " + " ".join(
            f"{lv['requests_per_s']:>18.0f} {lv['p50_ms']:>7.2f}" for lv in row["levels"]))
    return lines


def http_table(r: dict) -> list:
    if "http" not in r:
        return []
    h = r["http"]
    lines = ["", "service (POST /v1/embed, one PNG per request, keep-alive asyncio clients on "
             "127.0.0.1) beside the offline export (batch 1 latency, batch 256 images/s)",
             f"{'size':>7} {'export':>6} {'offline':>16} {'clients':>7} {'req/s':>7} "
             f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'x offline':>9}  read/decode/queue/"
             f"model ms"]
    total = errors = 0
    for row in h["sizes"]:
        for kind, served in row["served"].items():
            off = row["offline"][kind]
            rate = off["batch256_images_per_s"]["median"]
            for lv in served["levels"]:
                st = lv["stages_ms"]
                total, errors = total + lv["requests"], errors + lv["errors"]
                lines.append(
                    f"{row['size']:>4}^2 {kind:>6} {off['batch1']['p50_ms']:>6.2f}ms "
                    f"{rate:>6.0f}/s {lv['clients']:>7} {lv['requests_per_s']:>7.0f} "
                    f"{lv['p50_ms']:>7.2f} {lv['p99_ms']:>7.2f} {lv['errors']:>6} "
                    f"{lv['requests_per_s'] / rate:>9.2f}  " + "/".join(
                        f"{st.get(s, 0):.2f}" for s in ("read", "decode", "queue", "model")))
    lines.append(f"requests under load: {total}, errors: {errors}")
    for lv in h.get("floor", []):
        lines.append(f"GET /healthz (the HTTP stack alone), {lv['clients']} clients: "
                     f"{lv['requests_per_s']:.0f} req/s, p50 {lv['p50_ms']:.2f} ms")
    f = h.get("faults")
    if f:
        lines += ["", f"fault run on the 32^2 float service: {f['bad']} malformed requests "
                  f"({f['per_kind']} of each of {len(f['kinds'])} kinds) mixed with {f['good']} "
                  f"good ones; bad answered 4xx: {f['bad_4xx']}/{f['bad']}, good answered "
                  f"right: {f['good_right']}/{f['good']}; RSS MB {f['rss_mb']}; exit "
                  f"{f.get('exit')}"]
        lines += [f"  {k}: {v}" for k, v in f["kinds"].items()]
    return lines


def http_sections(only: str, quick: bool) -> dict:
    """The sections of `python -m siamese.bench --only http|http-options` (never in `all`:
    they need the serve extra)."""
    if only == "http":
        return {"http": collect_http(quick)}
    if only == "http-options":
        return {"http_sweep": sweep(quick)}
    return {}


def http_tables(r: dict) -> list:
    return http_table(r) + sweep_table(r)
