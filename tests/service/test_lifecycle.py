"""The service's bounds and its end: a full queue answers 503 with Retry-After, requests that
need a gallery are refused without one, enrolment needs the token, and SIGTERM during a request
lets it finish and exits 0. One server, started with options that make each case certain: a
batch waits up to 2 s for more requests and at most 2 requests may wait."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest
from conftest import extra
from service_client import Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slow_server(trained_run, tmp_path_factory):
    extra("fastapi")
    run_dir, root, _ = trained_run
    server = Server([run_dir / "export", "--max-wait-ms", "2000", "--max-batch", "64",
                     "--queue", "2", "--grace", "20", "--token", "s3cret"],
                    tmp_path_factory.mktemp("lifecycle") / "server.log")
    yield server, root
    server.stop()


def verify_files(root):
    return {"left": (root / "class0/000.png").read_bytes(),
            "right": (root / "class0/001.png").read_bytes()}


def in_thread(server, files, out: list) -> threading.Thread:
    t = threading.Thread(target=lambda: out.append(server.call("POST", "/v1/verify",
                                                               files=files)))
    t.start()
    return t


def test_no_gallery_and_the_token(slow_server):
    server, root = slow_server
    image = {"image": (root / "class0/000.png").read_bytes()}
    assert server.call("POST", "/v1/identify", files=image)[0] == 404
    assert server.call("GET", "/v1/gallery")[0] == 404
    status, _, body = server.call("POST", "/v1/gallery/alice", files={"images": image["image"]})
    assert status == 401 and "Bearer" in body["error"]
    status, _, _ = server.call("DELETE", "/v1/gallery/alice",
                               headers={"Authorization": "Bearer wrong"})
    assert status == 401
    status, _, body = server.call("POST", "/v1/gallery/alice", files={"images": image["image"]},
                                  headers={"Authorization": "Bearer s3cret"})
    assert status == 404 and "--gallery" in body["error"]
    assert server.call("GET", "/v1/info")[2]["enroll"] == "token"


def test_a_full_queue_answers_503_with_retry_after(slow_server):
    server, root = slow_server
    files = verify_files(root)
    out: list = []
    first = [in_thread(server, files, out)]
    time.sleep(0.3)  # the thread holds the first request, waiting 2 s for more
    first.append(in_thread(server, files, out))
    time.sleep(0.3)
    start = time.monotonic()
    status, headers, body = server.call("POST", "/v1/verify", files=files)
    assert status == 503 and headers["retry-after"] == "1" and "busy" in body["error"]
    assert time.monotonic() - start < 1.0  # refused at once, not after a wait
    for t in first:
        t.join()
    assert [r[0] for r in out] == [200, 200] and out[0][2] == out[1][2]
    metrics = server.call("GET", "/metrics")[2].decode()
    assert 'siamese_inference_requests_rejected_total{reason="queue_full"} 1' in metrics
    assert "siamese_batch_requests_bucket{le=\"2\"} 1" in metrics  # both ran as one batch


def test_sigterm_finishes_the_request_in_flight_and_exits_0(slow_server):
    server, root = slow_server
    out: list = []
    t = in_thread(server, verify_files(root), out)
    time.sleep(0.5)  # in flight: its batch waits up to 2 s for company
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(OSError):  # no longer accepting
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    t.join(30)
    assert out and out[0][0] == 200 and "score" in out[0][2]
    assert server.proc.wait(30) == 0
    assert "stopped (SIGTERM)" in server.log.read_text()


def test_sigterm_during_an_enrolment_writes_it_whole(trained_run, tmp_path):
    """SIGTERM while an enrolment is in flight: it is answered, the gallery file holds it, and
    the file is a whole gallery (never a torn one)."""
    import io
    import subprocess
    import sys

    import numpy as np
    from conftest import ROOT
    from PIL import Image

    from siamese.formats.gallery import read_gallery

    run_dir, root, _ = trained_run
    gallery = tmp_path / "g.gallery"
    subprocess.run([sys.executable, "-m", "siamese.gallery", "build", str(run_dir / "export"),
                    str(root), "--out", str(gallery)], check=True, cwd=ROOT,
                   capture_output=True)
    before = read_gallery(gallery)
    server = Server([run_dir / "export", "--gallery", gallery], tmp_path / "server.log")
    rng = np.random.default_rng(3)
    blobs = []
    for _ in range(40):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(buf, "PNG")
        blobs.append(buf.getvalue())
    out: list = []
    t = threading.Thread(target=lambda: out.append(server.call(
        "POST", "/v1/gallery/late", files={"images": blobs})))
    t.start()
    time.sleep(0.15)
    server.proc.send_signal(signal.SIGTERM)
    t.join(60)
    assert server.proc.wait(30) == 0
    after = read_gallery(gallery)  # a torn file would fail its checksum here
    if out and out[0][0] == 200:
        assert after.counts()["late"] == 40 and len(after.paths) == len(before.paths) + 40
    else:  # refused before it started: nothing changed
        assert after.paths == before.paths
