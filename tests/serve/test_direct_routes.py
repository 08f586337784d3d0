"""DirectRoutes, the inference routes' way around FastAPI's router, against that router (the slow
reference): the same requests get the same answers both ways, byte for byte: good requests in
JSON and binary, bad input, unknown models and versions, other methods, the ceiling route, and
the metrics' route labels."""

from __future__ import annotations

import asyncio
import json
import re

import numpy as np
import pytest

from lenet.serve.app import ServeOptions, create_app
from lenet.serve.models import load_models

MODEL = "lenet5-mnist"


async def call(app, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    """(status, headers, body) of one request to an ASGI app, its body in two chunks."""
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in
                   {"content-length": str(len(body)), **(headers or {})}.items()]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": raw_headers, "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 2), "state": {}}
    chunks = [body[: len(body) // 2], body[len(body) // 2:]]

    async def receive():
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    sent = []

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    return (start["status"], {k.decode(): v.decode() for k, v in start["headers"]},
            b"".join(m.get("body", b"") for m in sent[1:]))


def binary(x: np.ndarray, datatype: str) -> tuple[bytes, dict]:
    raw = x.tobytes()
    header = json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": datatype,
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "parameters": {"binary_data_output": True}}).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


def as_json(x: np.ndarray) -> bytes:
    return json.dumps({"id": "7", "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                              "data": x.reshape(-1).tolist()}]}).encode()


rng = np.random.default_rng(3)
PIXELS = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
IMAGES = rng.normal(0, 0.8, size=(3, 1, 32, 32)).astype(np.float32)
NAN = IMAGES.copy()
NAN[1, 0, 4, 4] = np.nan
REQUESTS = [
    ("POST", f"/v2/models/{MODEL}/infer", *binary(PIXELS, "UINT8")),
    ("POST", f"/v2/models/{MODEL}/infer", *binary(IMAGES, "FP32")),
    ("POST", f"/v2/models/{MODEL}/versions/1/infer", as_json(IMAGES), {}),
    ("POST", f"/v2/models/{MODEL}/infer", as_json(NAN), {}),
    ("POST", f"/v2/models/{MODEL}/infer", b"{not json", {}),
    ("POST", "/v2/models/missing/infer", as_json(IMAGES), {}),
    ("POST", f"/v2/models/{MODEL}/versions/2/infer", as_json(IMAGES), {}),
    ("GET", f"/v2/models/{MODEL}/infer", b"", {}),
    ("POST", f"/bench/models/{MODEL}/infer", *binary(PIXELS, "UINT8")),
]


@pytest.fixture(scope="module")
def answers():
    """Every request's answer from an app with DirectRoutes and from one without, and then
    each app's request counters."""
    async def main():
        out = []
        for direct in (True, False):
            app = create_app(load_models([MODEL]), None, ServeOptions(ceiling_route=True))
            # DirectRoutes takes the three inference routes (two /v2 paths and the ceiling)
            assert len(app.state.direct_routes) == 3
            if not direct:
                app.state.direct_routes.clear()
            out.append([await call(app, *request) for request in REQUESTS])
            _, _, metrics = await call(app, "GET", "/metrics")
            out[-1].append(sorted(re.findall(r"^lenet_requests_total\{.*$", metrics.decode(), re.M)))
            await app.state.server.close()
        return out

    return asyncio.run(main())


@pytest.mark.parametrize("i", range(len(REQUESTS)), ids=[f"{m} {p} {b[:1]!r}" for m, p, b, _ in REQUESTS])
def test_each_request_is_answered_as_fastapi_routes_it(answers, i):
    direct, routed = answers[0][i], answers[1][i]
    status, headers, body = direct
    assert (status, body) == (routed[0], routed[2])
    for name in ("content-type", "content-length", "inference-header-content-length", "retry-after"):
        assert headers.get(name) == routed[1].get(name)
    assert status == [200, 200, 200, 400, 400, 404, 404, 405, 200][i]


def test_metrics_label_routes_alike(answers):
    assert answers[0][-1] == answers[1][-1]
    assert any('route="/v2/models/{name}/versions/{version}/infer"' in line for line in answers[0][-1])
