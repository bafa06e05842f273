"""The fault run of `python -m siamese.bench --only http`: every malformed request of issue 30,
`per_kind` of each, mixed with good verify requests whose answers must not change, on 8
concurrent connections; the server's resident memory read before, during and after."""

from __future__ import annotations

import base64
import json
import struct
import zlib

from .loadgen import load, multipart, request, rss_mb


def huge_png(side: int = 20000) -> bytes:
    """A ~60 KB PNG whose image is side x side pixels (1-bit grey): a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = b"\x00" * (1 + side // 8)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + \
        chunk(b"IEND", b"")


def malformed(good: bytes) -> dict:
    """{kind: request bytes} of every bad input of issue 30 (the service has no gallery)."""
    def verify(left: bytes, right: bytes = good, **names) -> bytes:
        body, kind = multipart({names.get("a", "left"): left, names.get("b", "right"): right})
        return request("POST", "/v1/verify", body, kind)

    b64 = base64.b64encode(good).decode()
    big = request("POST", "/v1/verify", b"", "multipart/form-data; boundary=x",
                  length=50 * 2 ** 20).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    return {
        "empty body": request("POST", "/v1/verify"),
        "not an image": verify(b"%PDF-1.4 not an image"),
        "truncated PNG": verify(good[:len(good) // 2]),
        "20000x20000 PNG": verify(huge_png()),
        "50 MB upload (announced)": big,
        "wrong field names": verify(good, a="first", b="second"),
        "base64 that is not base64": request(
            "POST", "/v1/verify", json.dumps({"left": "@@not base64@@", "right": b64}).encode(),
            "application/json"),
        "gallery request without a gallery": request(
            "POST", "/v1/identify", *multipart({"image": good})),
        "identity name with path separators": request(
            "POST", "/v1/gallery/..%5Cetc", *multipart({"images": good})),
    }


def fault_run(server, good: bytes, per_kind: int) -> dict:
    """Bad and good requests interleaved (one good after every bad kind's turn)."""
    body, kind = multipart({"left": good, "right": good})
    verify = request("POST", "/v1/verify", body, kind)
    reference, goods = [], {"sent": 0, "right": 0}

    def good_check(status, data):
        if not reference:
            reference.append(data)
        goods["sent"] += 1
        goods["right"] += status == 200 and data == reference[0]
        return status == 200 and data == reference[0]

    load(server.port, lambda i: (verify, good_check), 8, 2000, 60)  # settle the memory
    goods.update(sent=0, right=0)
    bad = malformed(good)
    kinds = list(bad)
    cycle = len(kinds) + 1
    tally = {k: {} for k in kinds}

    def pick(i):
        if i % cycle == len(kinds):
            return verify, good_check
        name = kinds[i % cycle]

        def check(status, data):
            tally[name][status] = tally[name].get(status, 0) + 1
            return 400 <= status < 500
        return bad[name], check

    rss = [rss_mb(server.proc.pid)]
    runs = []
    for _ in range(3):  # memory read between thirds
        runs.append(load(server.port, pick, 8, (per_kind // 3 + 1) * cycle, 600))
        rss.append(rss_mb(server.proc.pid))
    return {"per_kind": min(sum(t.values()) for t in tally.values()),
            "bad": sum(c for t in tally.values() for c in t.values()),
            "bad_4xx": sum(c for t in tally.values() for s, c in t.items() if 400 <= s < 500),
            "good": goods["sent"], "good_right": goods["right"],
            "kinds": {k: {str(s): c for s, c in t.items()} for k, t in tally.items()},
            "rss_mb": [round(v, 1) for v in rss], "errors": sum(r["errors"] for r in runs),
            "error_statuses": sorted({s for r in runs for s in r["error_statuses"]})}
