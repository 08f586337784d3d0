"""A real lenet-serve process per module (the installed command, on a free port of 127.0.0.1),
and plain HTTP helpers for what tritonclient would not send (bad bodies, raw uploads)."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..support import CLEAN_ENV

SERVE = Path(sys.executable).with_name("lenet-serve")


@dataclass
class Served:
    proc: subprocess.Popen
    port: int
    output: list[str]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None, timeout: float = 30) -> tuple[int, dict, bytes]:
        """(status, headers with lower-case names, body) of one request."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: bytes | dict | None = None,
             headers: dict | None = None) -> tuple[int, dict]:
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        status, _, data = self.request(method, path, body, headers)
        return status, json.loads(data)

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.proc.stdout.close()
        return code


def start_server(*args, timeout: float = 120) -> Served:
    """``lenet-serve ARGS --port 0``, once it says where it listens."""
    proc = subprocess.Popen([str(SERVE), *map(str, args), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=CLEAN_ENV, start_new_session=True)
    output: list[str] = []
    found = threading.Event()
    port = []

    def watch() -> None:  # keeps draining the pipe, so the server never blocks on a full one
        for line in proc.stdout:
            output.append(line)
            m = re.search(r"serving .* on http://127\.0\.0\.1:(\d+)", line)
            if m and not port:
                port.append(int(m.group(1)))
                found.set()
        found.set()

    threading.Thread(target=watch, daemon=True).start()
    found.wait(timeout)
    if not port:
        proc.kill()
        pytest.fail(f"lenet-serve did not start:\n{''.join(output)}")
    return Served(proc, port[0], output)


@pytest.fixture(scope="module")
def server():
    """lenet5-mnist and a second name for the same artifact, with small limits to reach in tests."""
    served = start_server("lenet5-mnist", "second=lenet5-mnist", "--max-body-mb", "8",
                          "--body-timeout-s", "2")
    yield served
    assert served.stop() == 0, "".join(served.output)


@pytest.fixture(scope="session")
def engine():
    """The same model in this process: what every answer is compared with."""
    import lenet_ext

    return lenet_ext.load("lenet5-mnist")


@pytest.fixture(scope="session")
def page():
    """A photographed page of numbers (lenet.digits.kit.synth) made of the mnist-sample test digits,
    which need no download: the page, its PNG bytes and its JPEG bytes."""
    import cv2
    import numpy as np

    from lenet.data import mnist_sample_arrays
    from lenet.digits.kit.synth import make_page

    a, rng = mnist_sample_arrays(), np.random.default_rng(3)
    order = rng.permutation(len(a["test_y"]))
    sheet, _ = make_page(a["test_x"].numpy()[order], a["test_y"].numpy()[order], rng,
                         size=(480, 640), digit_height=(40, 50), lines=4, marks=1)
    png = cv2.imencode(".png", sheet.image)[1].tobytes()
    jpeg = cv2.imencode(".jpg", sheet.image, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    return sheet, png, jpeg
