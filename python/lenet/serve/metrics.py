"""Prometheus metrics a service owner expects: requests by route and status, errors, latency,
the batches the engine ran (rows and requests per call) and the rows waiting.

Each app has its own registry (not prometheus_client's global one), so several apps in one
process, as in the tests, count apart. Routes are labelled by their template
(``/v2/models/{name}/infer``), never the raw path, so unknown URLs cannot grow the label set."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .batcher import BatchStats

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("lenet_requests", "HTTP requests answered, by route and status code",
                                ["route", "code"], registry=self.registry)
        self.errors = Counter("lenet_request_errors", "Requests answered with a 4xx or 5xx status, "
                              "by route and status code", ["route", "code"], registry=self.registry)
        self.latency = Histogram("lenet_request_duration_seconds", "Time from the request's arrival "
                                 "to its answer, by route", ["route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.batch_rows = Histogram("lenet_batch_size_images", "Images in each engine call",
                                    ["model"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_requests = Histogram("lenet_batch_size_requests", "Requests gathered into each "
                                        "engine call", ["model"], buckets=BATCH_BUCKETS,
                                        registry=self.registry)
        self.engine_seconds = Histogram("lenet_engine_duration_seconds", "Time of each engine call",
                                        ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queued = Gauge("lenet_queue_images", "Images waiting for the engine", ["model"],
                            registry=self.registry)

    def observe_request(self, route: str, code: int, seconds: float) -> None:
        self.requests.labels(route, str(code)).inc()
        if code >= 400:
            self.errors.labels(route, str(code)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, model: str, stats: BatchStats) -> None:
        self.batch_rows.labels(model).observe(stats.rows)
        self.batch_requests.labels(model).observe(stats.requests)
        self.engine_seconds.labels(model).observe(stats.seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)
