"""The FastAPI application: routes, JSON errors, the body limit and request metrics.

    POST /v1/verify      left, right            -> score, threshold, same, export
    POST /v1/embed       images (one or more)   -> embeddings (?side=left|right)
    POST /v1/identify    image                  -> top-k identities or unknown (?top_k=5)
    GET  /v1/gallery                            -> identities and image counts
    POST /v1/gallery/{name}   images            -> enroll (token when not on loopback)
    DELETE /v1/gallery/{name}                   -> remove
    GET  /v1/gallery/{name}/thumbnail           -> PNG of its first enrolled image
    GET  /v1/info, /healthz, /readyz, /metrics, / (the web page)

Images as multipart files or as base64 strings in a JSON object (siamese.service.inputs).
Every refusal is JSON `{"error": "..."}` with a 4xx status (503 when the queue is full, with
Retry-After; 504 past the deadline); an unexpected failure is a 500 with no traceback.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from importlib import resources

import numpy as np
from PIL import Image

try:  # the optional extra `serve`: without it the command says what to install
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import PlainTextResponse, Response
    from starlette.exceptions import HTTPException
    MISSING = None
except ImportError as e:
    MISSING = e.name

from ..errors import UserError
from .batcher import Job
from .gallery import check_name
from .inputs import ClientError, decode, image_format, read_images
from .plumbing import PAGES, Guard, error, query_int, route
from .state import LOOPBACK, Busy, Service

log = logging.getLogger(__name__)

def create_app(service: Service) -> FastAPI:
    """The application of a Service (started and stopped with the app's lifespan)."""

    @contextlib.asynccontextmanager
    async def lifespan(app):
        service.start()
        yield
        service.stop()

    app = FastAPI(title="siamese", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    _handlers(app)
    _model_routes(app, service)
    _gallery_routes(app, service)
    _plain_routes(app, service)
    app.add_middleware(Guard, service=service)
    return app


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ClientError)
    async def client(request, e: ClientError):
        return error(e.status, e.message)

    @app.exception_handler(Busy)
    async def busy(request, e: Busy):
        return error(e.status, e.message, **({"Retry-After": "1"} if e.status == 503 else {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(422, f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(HTTPException)
    async def http(request, e: HTTPException):
        return error(e.status_code, str(e.detail))

    @app.exception_handler(Exception)
    async def unexpected(request, e: Exception):
        log.error("%s %s: %s: %s", request.method, request.url.path, type(e).__name__, e)
        return error(500, "internal error (logged by the service)")


async def _images(service: Service, request, fields: dict) -> dict:
    """{field: [uint8 (H, W, C)]} of a request's images, decoded as the export wants."""
    e, limits = service.engine, service.options.limits
    start = time.perf_counter()
    files = await read_images(request, fields, limits)
    read = time.perf_counter()
    out = {f: [decode(b, f if len(blobs) == 1 else f"{f}[{k}]", e.size, e.channels,
                      limits.max_pixels) for k, b in enumerate(blobs)]
           for f, blobs in files.items()}
    service.metrics.stage("read", read - start)
    service.metrics.stage("decode", time.perf_counter() - read)
    return out


def _model_routes(app: FastAPI, service: Service) -> None:
    engine = service.engine

    @route(app, "/v1/verify", "POST")
    async def verify(request):
        images = await _images(service, request, {"left": False, "right": False})
        score = await service.score(images["left"][0], images["right"][0])
        return {"score": score, "threshold": engine.spec["threshold"],
                "same": engine.same(score), "higher_is_similar": engine.spec["higher_is_similar"],
                "score_name": engine.spec["name"], "export": engine.export_id}

    @route(app, "/v1/embed", "POST")
    async def embed(request):
        side = request.query_params.get("side", "left")
        if side not in ("left", "right"):
            raise ClientError(422, f"side: {side[:20]!r}, expected left or right")
        images = await _images(service, request, {"images": True})
        emb = await service.embed(np.stack(images["images"]), side)
        return {"embeddings": emb.tolist(), "side": side, "export": engine.export_id}

    @route(app, "/v1/identify", "POST")
    async def identify(request):
        store = service.gallery()
        top_k = query_int(request, "top_k", 5, 1, 100)
        images = await _images(service, request, {"image": False})
        probe = await service.embed(np.stack(images["image"]), store.probe_side)
        found = store.identify(probe, top_k)[0]
        return dict(found, threshold=store.threshold, threshold_source=store.source,
                    export=engine.export_id)


def _gallery_routes(app: FastAPI, service: Service) -> None:
    limits = service.options.limits

    @route(app, "/v1/gallery")
    async def gallery(request):
        return service.gallery().summary()

    @route(app, "/v1/gallery/{name}", "POST")
    async def enroll(request):
        name = request.path_params["name"]
        service.check_token(request.headers.get("authorization"))
        store_name = check_name(name)
        store = service.gallery()
        files = await read_images(request, {"images": True}, limits)
        blobs = files["images"]
        formats = [image_format(b, f"images[{k}]", limits.max_pixels)
                   for k, b in enumerate(blobs)]
        for k, b in enumerate(blobs):  # every image must decode before the gallery changes
            decode(b, f"images[{k}]", service.engine.size, service.engine.channels,
                   limits.max_pixels)
        return await _change(service, lambda: store.enroll(store_name, blobs, formats))

    @route(app, "/v1/gallery/{name}", "DELETE")
    async def remove(request):
        name = request.path_params["name"]
        service.check_token(request.headers.get("authorization"))
        check_name(name)
        store = service.gallery()
        return await _change(service, lambda: store.remove(name))

    @route(app, "/v1/gallery/{name}/thumbnail")
    async def thumbnail(request):
        name = request.path_params["name"]
        path = service.gallery().first_image(check_name(name))
        try:
            with Image.open(path) as img:
                img.thumbnail((96, 96))
                buf = io.BytesIO()
                img.convert("RGB").save(buf, "PNG")
        except OSError:
            raise ClientError(404, f"identity {name!r}: its enrolled image is gone") from None
        return Response(buf.getvalue(), media_type="image/png",
                        headers={"Cache-Control": "max-age=60"})


async def _change(service: Service, call) -> dict:
    """Run a gallery change on the inference thread (between batches, one at a time)."""
    timeout = max(60.0, service.options.timeout_s)
    try:
        return await service.on_thread(Job(None, [], time.monotonic() + timeout, call=call),
                                       timeout)
    except UserError as e:
        raise ClientError(409, str(e).splitlines()[0]) from None


def _plain_routes(app: FastAPI, service: Service) -> None:
    engine = service.engine
    pages = {path: (resources.files(__package__).joinpath("static", name).read_bytes(), kind)
             for path, (name, kind) in PAGES.items()}

    for path in pages:
        @route(app, path)
        async def page(request):
            body, kind = pages[request.url.path]
            return Response(body, media_type=kind)

    @route(app, "/healthz")
    async def healthz(request):
        return {"status": "alive"}

    @route(app, "/readyz")
    async def readyz(request):
        if not service.ready:
            return error(503, "warming up")
        return {"status": "ready"}

    @route(app, "/metrics")
    async def metrics(request):
        return PlainTextResponse(service.metrics.render(),
                                 media_type="text/plain; version=0.0.4")

    @route(app, "/v1/info")
    async def info(request):
        spec = engine.spec
        return {"export": engine.export_id, "export_dir": str(engine.export_dir),
                "kind": engine.meta["kind"], "runtime": engine.runtime,
                "image_size": engine.size, "channels": engine.channels,
                "score_name": spec["name"], "higher_is_similar": spec["higher_is_similar"],
                "threshold": spec["threshold"], "embeds": engine.embeds,
                "gallery": None if service.store is None else service.store.summary(),
                "enroll": "token" if service.options.token else
                ("open (loopback)" if service.options.host in LOOPBACK else "disabled")}
