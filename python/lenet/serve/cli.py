"""lenet-serve: exported models behind the Open Inference Protocol (REST), the digit reader behind
/v1/read, Prometheus metrics and a page that reads digits in the browser.

    lenet-serve lenet5-mnist artifacts/demo                  # http://127.0.0.1:8000
    lenet-serve digits=artifacts/demo --host 0.0.0.0 --port 9000
    lenet-serve lenet5-mnist --ray --replicas 2               # on a Ray cluster (Ray Serve)

Exit status: 0 after a clean shutdown (SIGTERM or Ctrl-C: accepted requests are finished
first); 2 when nothing could be served (bad arguments, a model that cannot load, a busy port).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

import uvicorn

from .app import ServeOptions


def build_parser() -> argparse.ArgumentParser:
    defaults = ServeOptions()
    p = argparse.ArgumentParser(
        prog="lenet-serve",
        description="Serve LeNet models over HTTP: the Open Inference Protocol v2 (KServe/Triton "
                    "REST, with Triton's binary tensor data extension), POST /v1/read (an image "
                    "-> the numbers read, as lenet-digits --json), /metrics (Prometheus) and a page "
                    "at / to draw, upload or film digits. Concurrent requests are batched into "
                    "one engine call.",
        epilog="ARTIFACT: a lenet-export directory (or its .onnx/.torchscript.pt/.pt2), or the name of "
               "pretrained weights (lenet5-mnist). The model is served under its directory's name; "
               "NAME=ARTIFACT names it. Exit status: 0 clean shutdown, 2 nothing served.")
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="models to serve")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default %(default)s: this machine only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default %(default)s; 0 = any free port)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="engine threads per model (default: one per CPU)")
    p.add_argument("--max-batch", type=int, default=defaults.max_batch, metavar="N",
                   help="images per engine call (default %(default)s)")
    p.add_argument("--max-wait-ms", type=float, default=defaults.max_wait_ms, metavar="MS",
                   help="longest a request waits for others to share its engine call (default %(default)s)")
    p.add_argument("--max-queue", type=int, default=defaults.max_queue, metavar="N",
                   help="images queued per model; more are answered 503 + Retry-After (default %(default)s)")
    p.add_argument("--max-body-mb", type=float, default=defaults.max_body_mb, metavar="MB",
                   help="largest inference request body (default %(default)s)")
    p.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_mb, metavar="MB",
                   help="largest /v1/read upload (default %(default)s)")
    p.add_argument("--body-timeout-s", type=float, default=defaults.body_timeout_s, metavar="S",
                   help="a request whose body has not all arrived after S seconds is answered 408 "
                        "(default %(default)s)")
    p.add_argument("--max-requests", type=int, default=defaults.max_requests, metavar="N",
                   help="requests handled at once; more are answered 503 + Retry-After (default %(default)s)")
    reader = p.add_mutually_exclusive_group()
    reader.add_argument("--reader-model", metavar="PATH",
                        help="the model /v1/read and the page use (default: the reader model "
                             "bundled with the package)")
    reader.add_argument("--no-reader", action="store_true", help="no /v1/read (the page then cannot read)")
    p.add_argument("--ceiling-route", action="store_true",
                   help="also serve POST /bench/models/NAME/infer: the same request handling "
                        "without inference, for measuring what HTTP alone allows (tools/serve_load.py)")
    p.add_argument("--access-log", action="store_true", help="log every request (off: it costs throughput)")
    ray = p.add_argument_group("Ray Serve (pip install 'lenet[ray]')")
    ray.add_argument("--ray", action="store_true",
                     help="run as a Ray Serve application on the Ray cluster (RAY_ADDRESS, or a "
                          "local one) instead of in this process")
    ray.add_argument("--replicas", type=int, default=None, metavar="N",
                     help="a fixed number of replicas (default: autoscaling between "
                          "--min-replicas and --max-replicas on queued requests)")
    ray.add_argument("--min-replicas", type=int, default=1, metavar="N")
    ray.add_argument("--max-replicas", type=int, default=4, metavar="N")
    ray.add_argument("--replica-cpus", type=float, default=1.0, metavar="CPUS",
                     help="CPUs Ray reserves for each replica (default %(default)s)")
    return p


def check_arguments(args) -> str | None:
    """The first argument that is out of range, in words; None when all are fine."""
    checks = [
        (0 <= args.port <= 65535, f"--port must be in 0..65535, got {args.port}"),
        (args.threads is None or 1 <= args.threads <= 1024, f"--threads must be in 1..1024, got {args.threads}"),
        (1 <= args.max_batch <= 65536, f"--max-batch must be in 1..65536, got {args.max_batch}"),
        (0 <= args.max_wait_ms <= 1000, f"--max-wait-ms must be in 0..1000, got {args.max_wait_ms}"),
        (args.max_queue >= args.max_batch, f"--max-queue ({args.max_queue}) must be at least --max-batch ({args.max_batch})"),
        (args.max_body_mb > 0 and args.max_upload_mb > 0, "--max-body-mb and --max-upload-mb must be positive"),
        (0 < args.body_timeout_s <= 3600, f"--body-timeout-s must be in (0, 3600], got {args.body_timeout_s}"),
        (args.max_requests >= 1, f"--max-requests must be at least 1, got {args.max_requests}"),
        (args.replicas is None or args.replicas >= 1, f"--replicas must be at least 1, got {args.replicas}"),
        (1 <= args.min_replicas <= args.max_replicas,
         f"need 1 <= --min-replicas <= --max-replicas, got {args.min_replicas} and {args.max_replicas}"),
        (args.replica_cpus > 0, f"--replica-cpus must be positive, got {args.replica_cpus}"),
    ]
    return next((message for ok, message in checks if not ok), None)


def options_from(args) -> ServeOptions:
    return ServeOptions(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                        max_body_mb=args.max_body_mb, max_upload_mb=args.max_upload_mb,
                        body_timeout_s=args.body_timeout_s, max_requests=args.max_requests,
                        ceiling_route=args.ceiling_route,
                        instance_header=args.ray)


def _err(message: str) -> None:
    print(f"lenet-serve: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = check_arguments(args)
    if problem:
        _err(problem)
        return 2
    if args.ray:
        from lenet.commands import has_extra

        if not has_extra("lenet-serve --ray", "ray"):
            return 2
        from .ray_deployment import run_on_ray

        return run_on_ray(args, options_from(args))
    return serve_here(args, options_from(args))


def serve_here(args, options: ServeOptions) -> int:
    from .app import create_app
    from .models import ModelSetupError, load_models
    from .reading import PageReader

    try:
        models = load_models(args.artifacts, args.threads)
        reader = None if args.no_reader else PageReader(args.reader_model)
    except (ModelSetupError, ValueError, RuntimeError) as exc:
        _err(str(exc))
        return 2
    app = create_app(models, reader, options)
    config = uvicorn.Config(app, host=args.host, port=args.port, access_log=args.access_log,
                            log_level="info" if args.access_log else "warning",
                            timeout_graceful_shutdown=30, server_header=False)
    server = AnnouncingServer(config, app, list(models))
    try:
        server.run()
    except SystemExit:  # uvicorn's answer to an address it cannot bind (it logged why)
        pass
    if not server.started:
        _err(f"could not listen on {args.host}:{args.port} (in use, or not an address of this machine)")
        return 2
    cut_off = app.state.server.admission.requests  # still being handled when the server stopped
    print("lenet-serve: stopped" + (f" ({cut_off} requests cut off by the shutdown timeout)" if cut_off else
                                    ", every accepted request answered"), flush=True)
    return 0


class AnnouncingServer(uvicorn.Server):
    """uvicorn's Server, saying where it listens once it does (the real port when --port 0) and
    turning /v2/health/ready to 503 the moment a shutdown signal arrives, while the requests
    already accepted are finished."""

    def __init__(self, config: uvicorn.Config, app, names: list[str]) -> None:
        super().__init__(config)
        self.app = app
        self.names = names

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            print(f"lenet-serve: serving {', '.join(self.names)} on http://{host}:{port} "
                  "(the page at /, the protocol under /v2)", flush=True)

    def handle_exit(self, sig, frame) -> None:
        self.app.state.server.ready = False
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self):
        """SIGTERM and SIGINT start the graceful shutdown. uvicorn's own version raises the signal
        again once shut down, so the process would die of it (status -15) before saying it
        stopped; here a shutdown that was asked for and went well exits 0."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
