"""The same app as a Ray Serve deployment: replicas across a Ray cluster behind Ray's HTTP proxy,
each replica a whole lenet-serve (its own engines, batcher, reader, metrics).

    lenet-serve lenet5-mnist --ray                       # a local Ray, or the cluster in RAY_ADDRESS
    serve run lenet.serve.ray_deployment:app_builder artifacts=lenet5-mnist max_replicas=8

Autoscaling follows each replica's ongoing requests (those it holds, queued in its batcher or
computing). A replica must be allowed at least a batch's worth of requests at once, or its
batches never fill: ``max_ongoing_requests`` is twice ``max_batch``, so one batch gathers while
the last one computes, and scaling starts once replicas hold a full batch each. What the proxy
queues beyond that is bounded too: past it Ray answers 503 with Retry-After.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
from typing import Any

from ray import serve
from ray.serve.config import BackpressureConfig

from .app import ServeOptions

APP_NAME = "lenet-serve"


@serve.ingress()
class LenetServe:
    """One replica: the models loaded, the app built (when Ray asks for it, after __init__)."""

    def __init__(self, artifacts: list[str], options: dict[str, Any], reader_model: str | None,
                 no_reader: bool, threads: int) -> None:
        from .app import create_app
        from .models import load_models
        from .reading import PageReader

        models = load_models(artifacts, threads)
        reader = None if no_reader else PageReader(reader_model, workers=1)
        # Not "app": Ray's wrapper class has a property of that name.
        self.lenet_app = create_app(models, reader, ServeOptions(**options))

    def __serve_build_asgi_app__(self):
        return self.lenet_app


def build_application(artifacts: list[str], options: ServeOptions = ServeOptions(), *,
                      reader_model: str | None = None, no_reader: bool = False,
                      replicas: int | None = None, min_replicas: int = 1, max_replicas: int = 4,
                      replica_cpus: float = 1.0):
    """The Ray Serve application: ``replicas`` fixed, or autoscaling between the bounds."""
    options = dataclasses.replace(options, instance_header=True)  # which replica answered
    max_ongoing = 2 * options.max_batch
    scaling: dict[str, Any]
    if replicas is not None:
        scaling = {"num_replicas": replicas}
    else:
        scaling = {"autoscaling_config": {"min_replicas": min_replicas, "max_replicas": max_replicas,
                                          "target_ongoing_requests": options.max_batch}}
    deployment = serve.deployment(
        LenetServe,
        name="lenet",
        max_ongoing_requests=max_ongoing,
        max_queued_requests=4 * max_ongoing,
        backpressure_config=BackpressureConfig(status_code=503, retry_after_s=1),
        ray_actor_options={"num_cpus": replica_cpus},
        **scaling,
    )
    threads = max(1, round(replica_cpus))
    return deployment.bind(list(artifacts), dataclasses.asdict(options), reader_model, no_reader, threads)


def app_builder(args: dict[str, str]):
    """For ``serve run lenet.serve.ray_deployment:app_builder artifacts=A,B [key=value ...]``:
    keys ``artifacts`` (comma-separated), ``replicas``, ``min_replicas``, ``max_replicas``,
    ``replica_cpus``, ``max_batch``, ``max_wait_ms``, ``max_queue``, ``reader_model``."""
    known = {"artifacts", "replicas", "min_replicas", "max_replicas", "replica_cpus", "max_batch",
             "max_wait_ms", "max_queue", "reader_model"}
    unknown = set(args) - known
    if unknown or "artifacts" not in args:
        raise ValueError(f"app_builder: needs artifacts=A[,B...]; known keys: {', '.join(sorted(known))}"
                         + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else ""))
    defaults = ServeOptions()
    options = ServeOptions(max_batch=int(args.get("max_batch", defaults.max_batch)),
                           max_wait_ms=float(args.get("max_wait_ms", defaults.max_wait_ms)),
                           max_queue=int(args.get("max_queue", defaults.max_queue)))
    return build_application(
        [a for a in args["artifacts"].split(",") if a], options, reader_model=args.get("reader_model"),
        replicas=int(args["replicas"]) if "replicas" in args else None,
        min_replicas=int(args.get("min_replicas", 1)), max_replicas=int(args.get("max_replicas", 4)),
        replica_cpus=float(args.get("replica_cpus", 1.0)))


def run_on_ray(args, options: ServeOptions) -> int:
    """lenet-serve --ray: deploy on the cluster in RAY_ADDRESS (else a local Ray started here),
    answer on --host:--port through Ray's proxy until SIGTERM or Ctrl-C, then take it down."""
    import ray

    ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False,
             logging_level="WARNING", log_to_driver=False)
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        application = build_application(args.artifacts, options, reader_model=args.reader_model,
                                        no_reader=args.no_reader, replicas=args.replicas,
                                        min_replicas=args.min_replicas, max_replicas=args.max_replicas,
                                        replica_cpus=args.replica_cpus)
        serve.run(application, name=APP_NAME, route_prefix="/")
    except Exception as exc:  # noqa: BLE001 - a replica that cannot load its model ends up here
        print(f"lenet-serve: error: the Ray Serve deployment failed: {exc}", file=sys.stderr)
        serve.shutdown()
        ray.shutdown()
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"lenet-serve: serving {', '.join(args.artifacts)} on Ray Serve at "
          f"http://{args.host}:{args.port} (the page at /, the protocol under /v2)", flush=True)
    stop.wait()
    # Replicas finish the requests they hold before they stop (Ray's graceful shutdown).
    serve.delete(APP_NAME)
    serve.shutdown()
    ray.shutdown()
    print("lenet-serve: stopped", flush=True)
    return 0
