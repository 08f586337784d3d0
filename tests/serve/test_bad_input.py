"""Bodies no client library would send: each is a 4xx in the protocol's format ``{"error": ...}``
naming the problem (never FastAPI's 422 ``{"detail": ...}``, a 500 or a hung worker), and the
server goes on answering others: clients that hang up mid-request, send half a body, or a small
gzip body that inflates to gigabytes."""

from __future__ import annotations

import gzip
import json
import re
import socket
import time

import numpy as np
import pytest

INFER = "/v2/models/lenet5-mnist/infer"


def tensor_request(x: np.ndarray, **extra) -> dict:
    return {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.reshape(-1).tolist()}], **extra}


GOOD = tensor_request(np.zeros((1, 1, 32, 32), np.float32))


def binary_body(x: np.ndarray, size: int | None = None) -> tuple[bytes, dict]:
    raw = x.astype("<f4").tobytes()
    header = json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw) if size is None else size}}]}).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


@pytest.mark.parametrize("body, message", [
    (b"{not json", "invalid inference request: Invalid JSON"),
    ({"inputs": []}, "inputs: List should have at least 1 item"),
    ({"inputs": [{"name": "input", "shape": "1,1,32,32", "datatype": "FP32", "data": [0]}]},
     "inputs.0.shape: Input should be a valid array"),
    ({"inputs": [{"name": "input", "shape": [1, 1, 32, 32], "data": [0]}]}, "inputs.0.datatype: Field required"),
    ({"inputs": [{"name": "x", "shape": [1, 1, 32, 32], "datatype": "FP32", "data": [0] * 1024}]},
     "takes one input named 'input', got 'x'"),
    ({"inputs": [{"name": "input", "shape": [1, 1, 32, 32], "datatype": "FP32", "data": [0] * 5}]},
     "5 values in data for shape [1, 1, 32, 32] (1024 expected)"),
    ({"inputs": [{"name": "input", "shape": [1, 1, 32, 32], "datatype": "FP32", "data": ["a"] * 1024}]},
     "data must be an array of numbers"),
    ({"inputs": [{"name": "input", "shape": [1, 1, 32, 32], "datatype": "STRING", "data": [0] * 1024}]},
     "datatype 'STRING' is not a numeric type"),
    ({"inputs": [{"name": "input", "shape": [-1, 1, 32, 32], "datatype": "FP32", "data": []}]},
     "has a negative dimension"),
    ({**GOOD, "outputs": [{"name": "scores", "parameters": {"binary_data": "yes"}}]},
     "binary_data must be true or false"),
])
def test_bad_json_requests(server, body, message):
    status, doc = server.json("POST", INFER, body)
    assert status == 400 and list(doc) == ["error"], doc
    assert message in doc["error"]


def test_bad_binary_requests(server):
    x = np.zeros((2, 1, 32, 32), np.float32)
    body, headers = binary_body(x, size=100)
    status, doc = server.json("POST", INFER, body, headers)
    assert status == 400 and "8092 bytes after the JSON header belong to no input" in doc["error"], doc
    body, headers = binary_body(x, size=10**6)
    status, doc = server.json("POST", INFER, body, headers)
    assert status == 400 and "binary_data_size 1000000 runs past the end of the body" in doc["error"], doc
    body, headers = binary_body(x)
    status, doc = server.json("POST", INFER, body, {"Inference-Header-Content-Length": str(len(body) + 5)})
    assert status == 400 and "Inference-Header-Content-Length is" in doc["error"], doc
    status, doc = server.json("POST", INFER, body, {"Inference-Header-Content-Length": "ten"})
    assert status == 400 and "must be a number of bytes" in doc["error"], doc


def test_unknown_routes_and_methods(server):
    status, doc = server.json("GET", "/v2/models/lenet5-mnist/nothing")
    assert status == 404 and doc == {"error": "no such endpoint: GET /v2/models/lenet5-mnist/nothing"}
    status, doc = server.json("GET", INFER)
    assert status == 405 and list(doc) == ["error"]
    status, doc = server.json("POST", "/v2/models/missing/infer", GOOD)
    assert status == 404 and "unknown model 'missing'" in doc["error"]


def raw_exchange(server, head: bytes, body: bytes = b"", wait: float = 10) -> bytes:
    """Send ``head`` + ``body`` on a fresh connection, return the reply that comes back within
    ``wait``: its head and as much of its body as its Content-Length says (a server may send the
    two in separate packets, so one ``recv`` can end at the head)."""
    reply = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as s:
        s.sendall(head + body)
        try:
            while chunk := s.recv(4096):
                reply += chunk
                end = reply.find(b"\r\n\r\n")
                if end < 0:
                    continue
                length = re.search(rb"(?im)^content-length: *(\d+)", reply[:end])
                if length is None or len(reply) - end - 4 >= int(length.group(1)):
                    break
        except TimeoutError:
            pass
    return reply


def test_body_over_the_limit_is_refused_before_it_is_read(server):
    start = time.perf_counter()
    reply = raw_exchange(server, f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: {9 * 2**20}\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 413") and b"the limit is 8388608" in reply, reply
    assert time.perf_counter() - start < 5


def test_gzip_bomb_is_refused(server):
    bomb = gzip.compress(b"\0" * (64 * 2**20))  # 64 MiB of zeros in ~64 kB: over the 8 MiB limit
    status, doc = server.json("POST", INFER, bomb, {"Content-Encoding": "gzip"})
    assert status == 413 and "inflates past the limit" in doc["error"], doc
    status, doc = server.json("POST", INFER, b"not gzip", {"Content-Encoding": "gzip"})
    assert status == 400 and "not valid gzip" in doc["error"], doc
    status, doc = server.json("POST", INFER, b"{}", {"Content-Encoding": "br"})
    assert status == 415 and "'br' is not supported" in doc["error"], doc


def test_half_a_body_gets_408_and_hung_up_clients_are_let_go(server, engine):
    body = json.dumps(GOOD).encode()
    head = f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    # Clients that send half the request and vanish (a reset, as a killed process leaves).
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(head + body[: len(body) // 2])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    # One that sends half and waits: the server's body deadline (2 s here) answers it.
    start = time.perf_counter()
    reply = raw_exchange(server, head, body[: len(body) // 2])
    assert reply.startswith(b"HTTP/1.1 408") and b"did not arrive within 2 s" in reply, reply
    assert 1.5 < time.perf_counter() - start < 8
    # And the server answers the next client as before.
    status, doc = server.json("POST", INFER, GOOD)
    assert status == 200 and doc["outputs"][1]["data"] == engine.predict(np.zeros((1, 1, 32, 32), np.float32)).labels.tolist()


def test_metrics(server):
    server.json("POST", INFER, GOOD)
    server.json("POST", "/v2/models/missing/infer", GOOD)
    status, _, text = server.request("GET", "/metrics")
    text = text.decode()
    assert status == 200
    assert 'lenet_requests_total{code="200",route="/v2/models/{name}/infer"}' in text
    assert 'lenet_request_errors_total{code="404",route="/v2/models/{name}/infer"}' in text
    assert 'lenet_request_duration_seconds_bucket{le="0.005",route="/v2/models/{name}/infer"}' in text
    count = float(text.split('lenet_batch_size_images_count{model="lenet5-mnist"} ')[1].split()[0])
    assert count >= 1
    assert 'lenet_queue_images{model="lenet5-mnist"} 0.0' in text
