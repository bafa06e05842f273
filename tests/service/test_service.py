"""The real service on a free loopback port: every endpoint against the command-line tools,
every bad input of issue 30 answered with a 4xx (and the next good request as before), and
enrolment through the service equal to `python -m siamese.gallery add/remove`."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
from PIL import Image
from service_client import b64

from siamese.commands import gallery as gallery_cli
from siamese.commands.bench.faults import huge_png
from siamese.commands.predict import compare
from siamese.data.images import load_images
from siamese.formats.gallery import read_gallery
from siamese.scoring.bundles import open_comparator


def pair(root, a="class0/000.png", b="class1/003.png"):
    return (root / a).read_bytes(), (root / b).read_bytes()


def test_verify_equals_predict_multipart_and_json(served):
    server, export, root, _ = served
    comparator, meta = open_comparator(export, 2)
    for a, b in (("class0/000.png", "class1/003.png"), ("class2/001.png", "class2/007.png")):
        want = compare(comparator, meta, root / a, root / b)
        left, right = pair(root, a, b)
        status, _, got = server.call("POST", "/v1/verify", files={"left": left, "right": right})
        assert status == 200, got
        assert got["same"] == want["same"] and abs(got["score"] - want["score"]) < 1e-5
        assert got["threshold"] == meta["score"]["threshold"]
        status, _, again = server.call("POST", "/v1/verify",
                                       json_body={"left": b64(left), "right": b64(right)})
        assert status == 200 and again == got
    assert [want["same"] for want in (got,)] == [True]  # two images of one class: the same


def test_embed_equals_the_comparator(served):
    server, export, root, _ = served
    files = [root / f"class{c}/00{c}.png" for c in range(3)]
    comparator, meta = open_comparator(export, 8)
    want = comparator.embed_side(load_images(files, meta["preprocess"]["resize"], 1), "left")
    status, _, got = server.call("POST", "/v1/embed",
                                 files={"images": [f.read_bytes() for f in files]})
    assert status == 200 and np.allclose(got["embeddings"], want, atol=1e-5)
    assert np.asarray(got["embeddings"]).shape == (3, meta["embedding_size"])


def test_identify_equals_gallery_query(served, capsys):
    server, _, root, gallery = served
    probe = root / "class3/004.png"
    capsys.readouterr()
    assert gallery_cli.main(["query", str(gallery), str(probe), "--top-k", "3", "--json"]) == 0
    want = json.loads(capsys.readouterr().out)[0]
    status, _, got = server.call("POST", "/v1/identify?top_k=3",
                                 files={"image": probe.read_bytes()})
    assert status == 200, got
    assert got["identity"] == want["identity"] == "class3" and got["known"]
    assert [t["identity"] for t in got["top"]] == [t["identity"] for t in want["top"]]
    assert np.allclose([t["score"] for t in got["top"]], [t["score"] for t in want["top"]],
                       atol=1e-5)


def test_health_page_info_and_metrics(served):
    server, _, _, _ = served
    assert server.call("GET", "/healthz")[:1] == (200,)
    assert server.call("GET", "/readyz")[2] == {"status": "ready"}
    status, headers, page = server.call("GET", "/")
    assert status == 200 and b"<title>siamese" in page and b"/static/app.js" in page
    assert b"http://" not in page and b"https://" not in page  # no CDN: works offline
    for asset in ("/static/app.js", "/static/style.css"):
        status, _, body = server.call("GET", asset)
        assert status == 200 and b"https://" not in body and b"http://" not in body
    info = server.call("GET", "/v1/info")[2]
    assert info["gallery"]["images"] == 40 and info["enroll"] == "open (loopback)"
    status, headers, text = server.call("GET", "/metrics")
    text = text.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    for name in ('siamese_requests_total{route="/v1/verify",code="200"}',
                 "siamese_batch_size_bucket{le=", "siamese_queue_depth 0",
                 'siamese_request_duration_seconds_count{route="/v1/verify"}',
                 "siamese_gallery_identities 4"):
        assert name in text, name


def bad_requests(good: bytes) -> dict:
    """name -> (method, path, call kwargs, expected status): every bad input of issue 30."""
    ico = io.BytesIO()
    Image.new("L", (16, 16)).save(ico, "ICO")  # an image, but not a format the project reads
    return {
        "empty body": ("POST", "/v1/verify", {"body": b""}, 400),
        "empty multipart": ("POST", "/v1/verify", {"files": {}}, 422),
        "empty JSON body": ("POST", "/v1/verify", {"body": b"", "headers": {
            "Content-Type": "application/json"}}, 400),
        "not an image": ("POST", "/v1/verify", {"files": {"left": b"hello", "right": good}},
                         400),
        "empty file": ("POST", "/v1/verify", {"files": {"left": b"", "right": good}}, 400),
        "truncated PNG": ("POST", "/v1/verify", {"files": {"left": good[:len(good) // 2],
                                                           "right": good}}, 400),
        "unread format (ICO)": ("POST", "/v1/verify", {"files": {"left": ico.getvalue(),
                                                                 "right": good}}, 400),
        "20000x20000 PNG": ("POST", "/v1/verify", {"files": {"left": huge_png(),
                                                             "right": good}}, 413),
        "50 MB upload": ("POST", "/v1/verify", {"files": {"left": b"\0" * 50 * 2 ** 20,
                                                          "right": good}}, 413),
        "wrong field names": ("POST", "/v1/verify", {"files": {"a": good, "right": good}}, 422),
        "a text field, not a file": ("POST", "/v1/verify", {"body": b"left=x&right=y",
                                     "headers": {"Content-Type": "multipart/form-data; "
                                                 "boundary=zz"}}, 400),
        "base64 that is not base64": ("POST", "/v1/verify", {"json_body": {
            "left": "not base64 at all!", "right": b64(good)}}, 400),
        "JSON not an object": ("POST", "/v1/verify", {"json_body": [b64(good)]}, 400),
        "JSON missing a field": ("POST", "/v1/verify", {"json_body": {"left": b64(good)}}, 422),
        "JSON that is not JSON": ("POST", "/v1/verify", {"body": b"{left", "headers": {
            "Content-Type": "application/json"}}, 400),
        "a path instead of an image": ("POST", "/v1/verify", {"json_body": {
            "left": "/etc/passwd", "right": b64(good)}}, 400),
        "other content type": ("POST", "/v1/verify", {"body": good, "headers": {
            "Content-Type": "image/png"}}, 415),
        "two files for one": ("POST", "/v1/identify", {"files": {"image": [good, good]}}, 422),
        "top_k not a number": ("POST", "/v1/identify?top_k=lots", {"files": {"image": good}},
                               422),
        "top_k zero": ("POST", "/v1/identify?top_k=0", {"files": {"image": good}}, 422),
        "embed side unknown": ("POST", "/v1/embed?side=up", {"files": {"images": good}}, 422),
        "identity with a slash": ("POST", "/v1/gallery/a%2Fb", {"files": {"images": good}}, 404),
        "identity with a backslash": ("POST", "/v1/gallery/a%5Cb", {"files": {"images": good}},
                                      400),
        "identity ..": ("POST", "/v1/gallery/..", {"files": {"images": good}}, 400),
        "identity ..x": ("POST", "/v1/gallery/x..", {"files": {"images": good}}, 400),
        "remove one not enrolled": ("DELETE", "/v1/gallery/nobody", {}, 404),
        "thumbnail of one not enrolled": ("GET", "/v1/gallery/nobody/thumbnail", {}, 404),
        "unknown route": ("GET", "/v2/verify", {}, 404),
        "wrong method": ("GET", "/v1/verify", {}, 405),
    }


def test_every_bad_input_is_a_4xx_and_nothing_changes(served):
    server, _, root, gallery = served
    left, right = pair(root)
    before = server.call("POST", "/v1/verify", files={"left": left, "right": right})[2]
    gallery_bytes = gallery.read_bytes()
    for name, (method, path, kwargs, want) in bad_requests(left).items():
        status, headers, body = server.call(method, path, **kwargs)
        assert status == want, (name, status, body)
        assert isinstance(body, dict) and set(body) == {"error"}, (name, body)
        assert "Traceback" not in body["error"] and len(body["error"].splitlines()) == 1
        assert server.call("POST", "/v1/verify", files={"left": left, "right": right})[2] == \
            before, name
    assert gallery.read_bytes() == gallery_bytes
    metrics = server.call("GET", "/metrics")[2].decode()
    assert 'code="500"' not in metrics


def test_large_body_refused_from_its_header(served):
    """A client announcing 50 MB is answered 413 before it sends them."""
    import socket

    server = served[0]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 52428800\r\n\r\n")
        reply = b""
        while b"larger than" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 413") and "larger than" in reply


def test_enroll_and_remove_equal_the_gallery_tool(served, tmp_path, capsys):
    server, _, _, gallery = served
    rng = np.random.default_rng(7)
    blobs = []
    for _ in range(3):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(buf, "PNG")
        blobs.append(buf.getvalue())
    cli = tmp_path / "cli.gallery"
    shutil.copy(gallery.with_name("original.gallery"), cli)
    status, _, r = server.call("POST", "/v1/gallery/newbie", files={"images": blobs})
    assert status == 200 and r["added"] == 3 and r["identities"]["newbie"] == 3, r
    store = gallery.with_name(gallery.name + ".enrolled")
    assert gallery_cli.main(["add", str(cli), str(store)]) == 0
    same_gallery(read_gallery(gallery), read_gallery(cli))
    status, _, r = server.call("POST", "/v1/gallery/newbie", files={"images": blobs[:1]})
    assert status == 200 and r["added"] == 0  # the same bytes are never enrolled twice
    status, _, thumb = server.call("GET", "/v1/gallery/newbie/thumbnail")
    assert status == 200 and Image.open(io.BytesIO(thumb)).size == (16, 16)
    status, _, r = server.call("DELETE", "/v1/gallery/newbie")
    assert status == 200 and "newbie" not in r["identities"]
    assert gallery_cli.main(["remove", str(cli), "newbie"]) == 0
    same_gallery(read_gallery(gallery), read_gallery(cli))
    assert not (store / "newbie").exists()
    assert read_gallery(gallery).paths == read_gallery(gallery.with_name(
        "original.gallery")).paths


def same_gallery(a, b) -> None:
    """Equal content: arrays bit for bit, header but for the time of the change."""
    for key, value in a.arrays().items():
        assert np.array_equal(value, b.arrays()[key]), key
    drop = {"updated"}
    assert {k: v for k, v in a.header.items() if k not in drop} == \
        {k: v for k, v in b.header.items() if k not in drop}


def test_large_streamed_body_refused_while_read(served):
    """Without Content-Length (chunked), the body is counted as it arrives: 413 past the
    limit, and the service answers the next request as before."""
    import http.client

    server, _, root, _ = served

    def chunks():
        for _ in range(12 * 16):  # 12 MB, above the 10 MB default
            yield b"x" * 65536

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/v1/verify", body=chunks(), encode_chunked=True,
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 413 and b"larger than" in r.read()
    conn.close()
    left, right = pair(root)
    assert server.call("POST", "/v1/verify", files={"left": left, "right": right})[0] == 200
