"""Serve an export over HTTP: verification, embeddings, identification against a gallery,
enrolment, health, Prometheus metrics and a web page (docs/serving.md).

    python -m siamese.serve EXPORT_DIR [--gallery FILE] [--host 127.0.0.1] [--port 8080]
    siamese serve EXPORT_DIR ...

Any export the project writes: float, `--optimize fused`, `--quantize int8`, or its ONNX files
with --runtime onnxruntime. One inference thread owns the model; requests are batched (at most
--max-batch images, waiting at most --max-wait-ms for more). It listens on 127.0.0.1 unless
told otherwise; enrolling and removing identities then need --token (or SIAMESE_SERVE_TOKEN).
SIGTERM stops accepting, finishes the requests in flight within --grace seconds, exits 0.
Needs the extra: pip install -e '.[serve]'.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from ..errors import UserError
from ..service.app import MISSING, create_app
from ..service.engine import Engine
from ..service.gallery import GalleryStore
from ..service.inputs import Limits
from ..service.state import LOOPBACK, Options, Service
from .common import run, setup_logging

try:  # the optional extra `serve`
    import uvicorn
except ImportError:
    uvicorn = None

log = logging.getLogger(__name__)

TOKEN_ENV = "SIAMESE_SERVE_TOKEN"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m siamese.serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export_dir", type=Path)
    p.add_argument("--gallery", type=Path, help="a gallery file of this export (identify, "
                                                "enroll, remove)")
    p.add_argument("--far", type=float, help="identify at the gallery's threshold calibrated "
                                             "for this false-alarm rate (else the export's)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--runtime", choices=("mxnet", "onnxruntime"), default="mxnet")
    p.add_argument("--max-batch", type=int, default=32, help="images per network call")
    p.add_argument("--max-wait-ms", type=float, default=0.0,
                   help="wait for more requests after the first of a batch")
    p.add_argument("--queue", type=int, default=256, help="requests waiting at most (then 503)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds a request may wait")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to finish on SIGTERM")
    p.add_argument("--max-body-mb", type=float, default=10.0)
    p.add_argument("--max-pixels", type=int, default=4096 * 4096, help="pixels per image")
    p.add_argument("--max-images", type=int, default=64, help="images per request")
    p.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                   help=f"needed to enroll and remove (default: ${TOKEN_ENV})")
    return p.parse_args(argv)


def check(args) -> None:
    for name in ("max_batch", "queue", "max_images", "max_pixels"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("max_wait_ms", "timeout", "grace", "max_body_mb"):
        if getattr(args, name) < 0 or (name != "max_wait_ms" and getattr(args, name) == 0):
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    if not 0 <= args.port < 65536:
        raise UserError(f"--port {args.port}: not a port")


def build(args):
    """The FastAPI app of these options (the export and gallery opened and checked)."""
    limits = Limits(int(args.max_body_mb * 2 ** 20), args.max_pixels, args.max_images)
    engine = Engine(args.export_dir, args.runtime, args.max_batch)
    store = GalleryStore(args.gallery, engine, args.far) if args.gallery else None
    options = Options(args.max_batch, args.max_wait_ms, args.queue, args.timeout, args.grace,
                      limits, args.host, args.token)
    return create_app(Service(engine, store, options)), engine, store


def announce(args, engine, store) -> None:
    where = f"http://{args.host}:{args.port}"
    log.info("serving %s (%s export, %s) on %s; web page at %s/", engine.export_dir,
             engine.meta.get("optimized", {}).get("kind", "float"), engine.runtime, where, where)
    if store is not None:
        log.info("gallery %s: %d identities, %d images", store.path,
                 len(store.gallery.identities), len(store.gallery.paths))
    if args.token:
        log.info("enrolling and removing need the header Authorization: Bearer <token>")
    elif args.host not in LOOPBACK:
        log.warning("listening on %s without a token: enrolling and removing are DISABLED "
                    "(give --token or $%s)", args.host, TOKEN_ENV)
    else:
        log.info("enrolling and removing are open to local clients (loopback only)")


def main(argv=None) -> int:
    args = parse_args(argv)

    def body() -> int:
        setup_logging()
        check(args)
        missing = MISSING or (None if uvicorn else "uvicorn")
        if missing:
            raise UserError(f"serving needs the serve extra ({missing} is missing): pip install "
                            f"-e '.[serve]'")
        app, engine, store = build(args)
        config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                                access_log=False, timeout_graceful_shutdown=args.grace)
        announce(args, engine, store)
        stopping = {}

        def note(signum, frame):  # uvicorn hands the signal back after its graceful shutdown
            stopping["signal"] = signal.Signals(signum).name

        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, note)
        server = uvicorn.Server(config)
        with contextlib.suppress(SystemExit):  # uvicorn exits 1 when it cannot bind
            server.run()
        if not server.started:
            raise UserError(f"{args.host}:{args.port}: cannot listen there (in use, or not an "
                            f"address of this machine)")
        log.info("stopped%s", f" ({stopping['signal']})" if stopping else "")
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
