"""lenet-serve as a command: what it refuses to start with, and a SIGTERM that finishes the
requests already accepted before the process exits 0."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time

import numpy as np
import pytest

from ..support import CLEAN_ENV
from .conftest import SERVE, start_server


def run_serve(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(SERVE), *map(str, args)], capture_output=True, text=True,
                          env=CLEAN_ENV, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["no/such/artifact"], "no/such/artifact: cannot load it"),
    (["lenet5-mnistt"], "no pretrained weights named 'lenet5-mnistt'"),
    (["lenet5-mnist", "lenet5-mnist"], "the name 'lenet5-mnist' is already taken"),
    (["bad name=lenet5-mnist"], "cannot be a model name in a URL"),
    (["lenet5-mnist", "--max-batch", "64", "--max-queue", "8"], "--max-queue (8) must be at least --max-batch (64)"),
    (["lenet5-mnist", "--port", "70000"], "--port must be in 0..65535"),
])
def test_refuses_to_start(args, message):
    proc = run_serve(*args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_busy_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = run_serve("lenet5-mnist", "--no-reader", "--port", taken.getsockname()[1])
    assert proc.returncode == 2 and "could not listen on 127.0.0.1:" in proc.stderr, proc.stderr


def test_sigterm_finishes_accepted_requests(engine):
    # Requests wait up to 1 s for company in the batcher: SIGTERM arrives while they do.
    served = start_server("lenet5-mnist", "--no-reader", "--max-wait-ms", "1000")
    x = np.random.default_rng(4).normal(size=(3, 1, 32, 32)).astype(np.float32)
    body = json.dumps({"inputs": [{"name": "input", "shape": [3, 1, 32, 32], "datatype": "FP32",
                                   "data": x.reshape(-1).tolist()}]}).encode()
    answers: list = []

    def send() -> None:
        answers.append(served.json("POST", "/v2/models/lenet5-mnist/infer", body))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    start = time.perf_counter()
    code = served.stop()
    for t in threads:
        t.join()
    assert code == 0, "".join(served.output)
    assert "lenet-serve: stopped" in "".join(served.output)
    assert len(answers) == 6 and all(status == 200 for status, _ in answers), answers
    for _, doc in answers:
        assert doc["outputs"][1]["data"] == engine.predict(x).labels.tolist()
    assert time.perf_counter() - start < 20
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", served.port), timeout=2).close()
