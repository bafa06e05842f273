"""HTTP plumbing of the service: JSON errors, plain Starlette endpoints, the body limit and
the request metrics (an ASGI middleware)."""

from __future__ import annotations

import json
import time

from .inputs import ClientError

try:  # the optional extra `serve`
    from fastapi.responses import JSONResponse, Response
except ImportError:  # siamese.service.app reports what is missing
    JSONResponse = Response = None

PAGES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/static/style.css": ("style.css", "text/css; charset=utf-8")}
ROUTES = ("/v1/verify", "/v1/embed", "/v1/identify", "/v1/info", "/healthz", "/readyz",
          "/metrics", *PAGES)


def route_of(path: str) -> str:
    """The metrics label of a path (identity names folded into one label)."""
    if path in ROUTES:
        return path
    if path.startswith("/v1/gallery"):
        return "/v1/gallery/{name}/thumbnail" if path.endswith("/thumbnail") else \
            "/v1/gallery/{name}" if path.count("/") > 2 else "/v1/gallery"
    return "other"


def error(status: int, message: str, **headers) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def route(app, path: str, method: str = "GET"):
    """Register a plain Starlette endpoint (no FastAPI dependency solving on the hot path); a
    dict it returns is sent as JSON, encoded once."""
    def register(fn):
        async def endpoint(request):
            out = await fn(request)
            if isinstance(out, dict):
                return Response(json.dumps(out).encode(), media_type="application/json")
            return out
        app.router.add_route(path, endpoint, methods=[method], include_in_schema=False)
        return fn
    return register


def query_int(request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name, str(default))
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ClientError(422, f"{name}: {raw[:20]!r}, expected {low} to {high}")
    return int(raw)


class Guard:
    """ASGI middleware: refuses bodies above the limit (413, from Content-Length or while
    reading) and counts every answer by route and status."""

    def __init__(self, app, service):
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]
        limit = self.service.options.limits.max_body
        length = dict(scope["headers"]).get(b"content-length", b"0")
        seen = [0]

        async def counted_receive():
            msg = await receive()
            seen[0] += len(msg.get("body", b""))
            if seen[0] > limit:
                raise ClientError(413, f"body larger than {limit} bytes")
            return msg

        async def noted_send(msg):
            if msg["type"] == "http.response.start":
                status[0] = msg["status"]
            await send(msg)

        if not length.isdigit() or int(length) > limit:
            text = "bad Content-Length" if not length.isdigit() else \
                f"body larger than {limit} bytes"
            await error(413 if length.isdigit() else 400, text)(scope, receive, noted_send)
        else:
            await self.app(scope, counted_receive, noted_send)
        self.service.metrics.request(route_of(scope["path"]), status[0],
                                     time.perf_counter() - start)
