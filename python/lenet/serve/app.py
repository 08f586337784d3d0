"""The HTTP application: the Open Inference Protocol's REST routes, /v1/read, /metrics and the
page at /, over the models and the reader a server holds.

    app = create_app(load_models(["lenet5-mnist"]), PageReader(), ServeOptions())

Every failure is answered in the protocol's format, ``{"error": "..."}``: schema and path
validation included (400, not FastAPI's 422 ``{"detail": ...}``), unknown routes (404) and
anything unexpected (500). The same app runs under uvicorn (lenet-serve) and Ray Serve."""

from __future__ import annotations

import gzip
import os
import socket
import time
import zlib
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from . import protocol, tensors
from .batcher import Batcher
from .errors import ServeError
from .limits import Admission, BodyLimits, read_body
from .metrics import Metrics
from .models import VERSION, ServedModel
from .reading import PageReader, image_from_upload

STATIC = Path(__file__).resolve().with_name("static")
SERVER_NAME = "lenet-serve"
EXTENSIONS = ["binary_tensor_data"]


@dataclass(frozen=True)
class ServeOptions:
    max_batch: int = 256               # images per engine call
    max_wait_ms: float = 2.0           # how long the oldest queued request may wait for others
    max_queue: int = 8192              # images queued per model; past it: 503 + Retry-After
    max_body_mb: float = 32.0          # one inference request (8192 32x32 FP32 images are 32 MiB)
    max_upload_mb: float = 20.0        # one /v1/read upload
    body_timeout_s: float = 30.0       # to receive a whole body
    max_requests: int = 256            # being handled at once; past it: 503 + Retry-After
    max_held_mb: float = 512.0         # bodies of the requests being handled, together
    ceiling_route: bool = False        # POST /bench/models/{name}/infer (tools/serve_load.py)
    instance_header: bool = False      # Lenet-Instance: host:pid on every answer (Ray replicas)


class Server:
    """What the routes share: models, their batchers, the reader, limits, metrics, readiness."""

    def __init__(self, models: dict[str, ServedModel], reader: PageReader | None,
                 options: ServeOptions) -> None:
        self.models = models
        self.reader = reader
        self.options = options
        self.metrics = Metrics()
        mib = 2**20
        self.infer_limits = BodyLimits(int(options.max_body_mb * mib), options.body_timeout_s)
        self.upload_limits = BodyLimits(int(options.max_upload_mb * mib), options.body_timeout_s)
        self.admission = Admission(options.max_requests, int(options.max_held_mb * mib))
        self.batchers = {}
        for name, model in models.items():
            self.batchers[name] = Batcher(model.engine.scores, max_batch=options.max_batch,
                                          max_wait_s=options.max_wait_ms / 1000,
                                          max_queue=options.max_queue, name=name,
                                          on_batch=lambda stats, n=name: self.metrics.observe_batch(n, stats))
            self.metrics.queued.labels(name).set_function(lambda b=self.batchers[name]: b.queued_rows)
            # The first call of an engine allocates its buffers: done now, not in a client's time.
            model.engine.scores(np.zeros((1, 1, model.size, model.size), np.float32))
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self.ready = True

    def model(self, name: str, version: str | None = None) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            raise ServeError(404, f"unknown model {name!r}; this server serves: {', '.join(self.models)}")
        if version is not None and version != VERSION:
            raise ServeError(404, f"model {name!r} has no version {version!r}; its only version is {VERSION}")
        return model

    def check_ready(self) -> None:
        if not self.ready:
            raise ServeError(503, "the server is shutting down")

    async def close(self) -> None:
        self.ready = False
        for batcher in self.batchers.values():
            await batcher.close()
        if self.reader is not None:
            self.reader.close()


def error_response(exc: ServeError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())


def create_app(models: dict[str, ServedModel], reader: PageReader | None = None,
               options: ServeOptions = ServeOptions()) -> FastAPI:
    server = Server(models, reader, options)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await server.close()  # uvicorn has already let the accepted requests finish

    app = FastAPI(title=SERVER_NAME, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server
    install_error_handlers(app)
    # The inference routes, once declared (below), for DirectRoutes; on app.state so that a test
    # can empty it and compare with FastAPI's own routing.
    direct: list[APIRoute] = []
    app.state.direct_routes = direct
    app.add_middleware(DirectRoutes, routes=direct)
    app.add_middleware(RequestMetrics, server=server)  # added last: the outer one, counts all
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/v2/health/live")
    async def live() -> dict:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> dict:
        server.check_ready()
        return {"ready": True}

    @app.get("/v2")
    async def server_metadata() -> dict:
        from lenet import __version__

        return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> dict:
        return server.model(name, version).metadata()

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> dict:
        server.model(name, version)
        server.check_ready()
        return {"name": name, "ready": True}

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(name: str, request: Request, version: str | None = None) -> Response:
        return await infer_response(server, request, name, version)

    if options.ceiling_route:
        @app.post("/bench/models/{name}/infer", include_in_schema=False)
        async def ceiling(name: str, request: Request) -> Response:
            """Everything /infer does but the inference: what HTTP, parsing and encoding alone
            allow (tools/serve_load.py compares the two). Off unless asked for."""
            return await infer_response(server, request, name, ceiling=True)

    # Called by DirectRoutes, ahead of FastAPI's router (see there).
    direct.extend(route for route in app.routes if isinstance(route, APIRoute) and route.name in ("infer", "ceiling"))

    @app.post("/v1/read")
    async def read(request: Request) -> JSONResponse:
        if server.reader is None:
            raise ServeError(404, "this server was started without the digit reader (--no-reader)")
        server.check_ready()
        limits = server.upload_limits
        with server.admission.hold(limits.max_bytes):
            body = await read_body(request, limits)
            image, source = image_from_upload(body, request.headers.get("content-type", ""))
            return JSONResponse(await server.reader.read(image, source))

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(server.metrics.text(), media_type=server.metrics.content_type)

    return app


async def infer_response(server: Server, request: Request, name: str, version: str | None = None,
                         ceiling: bool = False) -> Response:
    """The answer to an inference request for model ``name``; with ``ceiling``, the same
    handling with zeros for scores and no inference."""
    model = server.model(name, version)
    if ceiling:
        async def no_inference(x: np.ndarray) -> np.ndarray:
            return np.zeros((len(x), model.spec.num_classes), np.float32)

        return await run_inference(server, model, request, no_inference)
    server.check_ready()
    return await run_inference(server, model, request, server.batchers[name].submit)


async def run_inference(server: Server, model: ServedModel, request: Request, infer) -> Response:
    limits = server.infer_limits
    declared = request.headers.get("content-length")
    compressed = request.headers.get("content-encoding", "identity").lower() not in ("", "identity")
    # What the body may occupy: its declared size, or the limit when unknown or inflated later.
    held = int(declared) if declared and declared.isdigit() and not compressed else limits.max_bytes
    with server.admission.hold(min(held, limits.max_bytes)):
        body = await read_body(request, limits)
        parsed = protocol.parse(body, request.headers.get(tensors.HEADER_LENGTH))
        datatypes = {item.name: item.datatype for item in parsed.request.inputs}
        x = model.engine_input(parsed.inputs, datatypes)
        plan = protocol.output_plan(parsed.request, ["scores", "classes"])
        if len(x):
            scores = await infer(x)
        else:
            scores = np.zeros((0, model.spec.num_classes), np.float32)
        content, headers = protocol.response_body(model.name, VERSION, parsed.request, plan,
                                                  model.outputs(scores))
    encoding = compression(request.headers.get("accept-encoding", ""))
    if encoding is not None:  # asked for by the client (tritonclient's response_compression_algorithm)
        content = gzip.compress(content, 1) if encoding == "gzip" else zlib.compress(content, 1)
        headers["Content-Encoding"] = encoding
    return Response(content, headers=headers)


def compression(accept_encoding: str) -> str | None:
    """gzip or deflate when the client accepts it (and has not refused it with q=0), else None."""
    accepted = {}
    for token in accept_encoding.lower().split(","):
        name, _, params = token.strip().partition(";")
        accepted[name.strip()] = params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return next((name for name in ("gzip", "deflate") if accepted.get(name)), None)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServeError)
    async def serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(ServeError(400, f"invalid request: {where + ': ' if where else ''}{first['msg']}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = f"no such endpoint: {request.method} {request.url.path}" if exc.status_code == 404 \
            else str(exc.detail)
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)


class DirectRoutes:
    """ASGI middleware: a request to one of ``routes`` (the inference routes) goes straight to the
    route's endpoint, matched by the route's own path pattern, without FastAPI's router (which
    tries every route in turn), dependency resolution and inner middleware. With batches of 256
    images that machinery took more of the event loop's time than reading, checking and
    answering the request itself (168 against 334 us a request, in process), and the event loop
    shares the cores with the engine. The endpoints take (request, path parameters) and raise
    ServeError, answered here in the protocol's format; anything else goes up to the app's
    handler for unexpected errors (a 500), as under FastAPI."""

    def __init__(self, app, routes: list[APIRoute]) -> None:
        self.app = app
        self.routes = routes  # filled by create_app before the first request

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                match, child_scope = route.matches(scope)  # the router's own test (path, method)
                if match is not Match.FULL:
                    continue
                scope.update(child_scope)  # path parameters and route, as the router sets them
                try:
                    response = await route.endpoint(request=Request(scope, receive), **scope["path_params"])
                except ServeError as exc:
                    response = error_response(exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class RequestMetrics:
    """ASGI middleware: every answer counted by its route template and status, with its time."""

    def __init__(self, app, server: Server) -> None:
        self.app = app
        self.server = server
        self.instance = [(b"lenet-instance", server.instance.encode())] if server.options.instance_header else []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        admission = self.server.admission
        # Work (inference, reading) comes by POST; health, metadata and metrics stay answerable
        # while the server turns work away.
        if scope["method"] == "POST" and (refusal := admission.full()) is not None:
            await error_response(refusal)(scope, receive, send)
            self.server.metrics.observe_request("refused", refusal.status, time.perf_counter() - start)
            return

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if self.instance:
                    message["headers"] = [*message.get("headers", []), *self.instance]
            await send(message)

        try:
            with admission.request():
                await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.server.metrics.observe_request(template, status, time.perf_counter() - start)
