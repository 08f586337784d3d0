"""lenet-serve --ray: a local Ray instance, two replicas behind Ray Serve's proxy, both answering
the protocol (told apart by the Lenet-Instance header each replica adds), then a clean stop."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ..support import CLEAN_ENV
from .conftest import SERVE

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_server():
    # Checked in a child: importing ray.serve here would bring its deprecation warnings into
    # this test process, where warnings are errors.
    probe = subprocess.run([sys.executable, "-c", "import ray.serve"], capture_output=True, text=True,
                           env=CLEAN_ENV)
    if probe.returncode != 0:
        pytest.skip("Ray Serve cannot be imported for this Python (pip install 'lenet[ray]'): "
                    + (probe.stderr.strip().splitlines() or ["?"])[-1])
    port = free_port()
    proc = subprocess.Popen([str(SERVE), "lenet5-mnist", "--ray", "--replicas", "2", "--replica-cpus", "0.5",
                             "--no-reader", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=CLEAN_ENV, start_new_session=True)
    output: list[str] = []
    ready = threading.Event()

    def watch() -> None:
        for line in proc.stdout:
            output.append(line)
            if re.search(r"serving lenet5-mnist on Ray Serve", line) or "error" in line:
                ready.set()
        ready.set()

    threading.Thread(target=watch, daemon=True).start()
    ready.wait(240)
    if proc.poll() is not None or not any("on Ray Serve" in line for line in output):
        proc.kill()
        pytest.fail("lenet-serve --ray did not start:\n" + "".join(output[-40:]))
    yield port
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 0, "".join(output[-40:])
    proc.stdout.close()


def infer(port: int, x: np.ndarray) -> tuple[int, str, dict]:
    body = json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                   "data": x.reshape(-1).tolist()}]})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/v2/models/lenet5-mnist/infer", body=body)
        response = conn.getresponse()
        return response.status, response.getheader("lenet-instance", ""), json.loads(response.read())
    finally:
        conn.close()


def test_two_replicas_answer(ray_server, engine):
    x = np.random.default_rng(5).normal(size=(4, 1, 32, 32)).astype(np.float32)
    expected = engine.predict(x).labels.tolist()
    instances: set[str] = set()
    deadline = time.time() + 60
    with ThreadPoolExecutor(8) as pool:
        while len(instances) < 2 and time.time() < deadline:
            for status, instance, doc in pool.map(lambda _: infer(ray_server, x), range(16)):
                assert status == 200, doc
                assert doc["outputs"][1]["data"] == expected
                instances.add(instance)
    assert len(instances) == 2, instances  # two processes, each a whole lenet-serve


def test_errors_keep_the_protocol_format_under_ray(ray_server):
    conn = http.client.HTTPConnection("127.0.0.1", ray_server, timeout=60)
    conn.request("POST", "/v2/models/nope/infer", body="{}")
    response = conn.getresponse()
    assert response.status == 404 and "unknown model 'nope'" in json.loads(response.read())["error"]
    conn.close()
