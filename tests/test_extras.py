"""Every extra is complete: after ``pip install 'lenet[EXTRA]'`` alone, in a fresh venv, each
command of that extra runs its main paths (each flag that reaches other code or other libraries)
on real small inputs, on the CPU.

One venv per extra ([train] serves lenet-train, lenet-summary and ``python -m lenet_ext``), each
with the wheel that test_light_install builds, and nothing else: every test also asserts that
the other extras' distributions are absent, so a command cannot pass on something its extra does
not bring. Each venv holds torch (a few GB) and is deleted when its test ends. The inputs a
command needs from another extra (a checkpoint, an artifact directory, a page) are made in this
test process, which has everything. Commands run with cwd outside the source tree and without
PYTHONPATH, so the installed copy is what runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .support import build_wheel, fresh_venv, installed, make_model, run, run_export, write_checkpoint

pytestmark = pytest.mark.slow

# Distributions of other extras that each extra's venv must not hold (what it holds through its
# own requirements, e.g. matplotlib through mlxtend, is not listed).
ABSENT = {"train": {"onnxruntime", "onnxscript"}, "export": {"torchvision"},
          "digits": {"onnxruntime", "mlxtend", "torchvision"},
          "bench": {"mlxtend", "torchvision", "onnxscript"},
          "serve": {"torch", "onnxruntime", "mlxtend", "torchvision", "ray", "tqdm"}}
PARITY_RUNTIMES = {"eager", "torchscript", "onnxruntime", "opencv-dnn", "torch.export"}
BENCH_ENGINES = {"lenet_ext", "PyTorch eager", "TorchScript", "ONNX Runtime", "OpenCV DNN"}


@pytest.fixture(scope="module")
def wheel() -> Path:
    return build_wheel()


@pytest.fixture
def venv_with(tmp_path, wheel):
    """venv_with(EXTRA) -> the bin directory of a fresh venv holding only lenet[EXTRA]."""
    made = []

    def make(extra: str) -> Path:
        env_dir = tmp_path / f"venv-{extra}"
        made.append(env_dir)
        bin_dir = fresh_venv(env_dir, f"{wheel}[{extra}]")
        names = installed(bin_dir)
        assert not names & ABSENT[extra], f"[{extra}] venv holds {sorted(names & ABSENT[extra])}"
        # The installed copy, not the source tree, is what its commands import.
        where = run(bin_dir / "python", "-I", "-c", "import lenet, lenet_ext; print(lenet.__file__); "
                    "print(lenet_ext.__file__)", cwd=tmp_path).stdout.split()
        assert all(Path(w).is_relative_to(env_dir) for w in where), where
        return bin_dir

    yield make
    for env_dir in made:  # a few GB each: not left for pytest's retention of old tmp dirs
        shutil.rmtree(env_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_checkpoint(make_model("lenet5", seed=3), tmp_path_factory.mktemp("ckpt") / "best.pt")


@pytest.fixture(scope="module")
def artifact(checkpoint) -> Path:
    out = checkpoint.parent / "art"
    rc, _, err = run_export(checkpoint, "--out", out, "--no-verify")  # every format
    assert rc == 0, err
    return out


def test_train(venv_with, tmp_path, artifact):
    bin_dir = venv_with("train")
    out = tmp_path / "run"
    common = ["--dataset", "mnist-sample", "--augment", "--rubbish", "100", "--device", "cpu",
              "--quiet", "--out", out]
    first = run(bin_dir / "lenet-train", *common, "--epochs", "1", cwd=tmp_path)
    assert "test accuracy" in first.stdout, first.stdout
    assert {p.name for p in out.iterdir()} >= {"last.pt", "best.pt", "metrics.jsonl", "curves.png"}
    resumed = run(bin_dir / "lenet-train", *common, "--epochs", "2", "--resume", cwd=tmp_path)
    assert f"resuming {out} after epoch 1/2" in resumed.stderr, resumed.stderr
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]

    arch = run(bin_dir / "lenet-summary", "lenet5", cwd=tmp_path).stdout
    assert arch.startswith("lenet5:") and "60,000" in arch, arch
    trained = run(bin_dir / "lenet-summary", out / "best.pt", cwd=tmp_path).stdout
    assert trained.splitlines()[-1] == arch.splitlines()[-1]  # the totals row: the same network

    scored = run(bin_dir / "python", "-I", "-m", "lenet_ext", artifact, "--threads", "1",
                 cwd=tmp_path).stdout
    assert "mnist-sample test, 1000 images: accuracy" in scored, scored
    shipped = run(bin_dir / "python", "-I", "-m", "lenet_ext", "lenet5-mnist", "--threads", "1",
                  cwd=tmp_path).stdout
    assert "mnist-sample test, 1000 images: accuracy" in shipped, shipped


def test_export(venv_with, tmp_path, checkpoint):
    bin_dir = venv_with("export")
    out = tmp_path / "art"
    run(bin_dir / "lenet-export", checkpoint, "--out", out, cwd=tmp_path)
    parity = json.loads((out / "manifest.json").read_text())["parity"]
    # Every runtime the parity check promises ran, on real test digits as well as random inputs.
    assert parity["passed"] and set(parity["runtimes"]) == PARITY_RUNTIMES, parity["runtimes"].keys()
    assert parity["inputs"]["test-images"] == "mnist-sample test split", parity["inputs"]

    one = tmp_path / "onnx-only"
    run(bin_dir / "lenet-export", checkpoint, "--out", one, "--formats", "onnx", "--opset", "13",
        "--no-verify", cwd=tmp_path)
    manifest = json.loads((one / "manifest.json").read_text())
    assert sorted(p.name for p in one.iterdir()) == ["manifest.json", "model.onnx"]
    assert manifest["parity"] == {"skipped": True, "reason": "--no-verify"}
    assert manifest["onnx"]["opset"] == 13

    # The pretrained weights the wheel ships, by name.
    shipped = tmp_path / "pretrained"
    run(bin_dir / "lenet-export", "lenet5-mnist", "--out", shipped, "--formats", "onnx", "--no-verify",
        cwd=tmp_path)
    assert json.loads((shipped / "manifest.json").read_text())["source"]["dataset"] == "mnist"


def test_digits(venv_with, tmp_path, checkpoint):
    import cv2
    import numpy as np

    from lenet.data import mnist_sample_arrays
    from lenet.digits.kit.synth import make_page

    # A page as python -m lenet.digits.kit.synth makes one, of the mnist-sample test digits (offline).
    a, rng = mnist_sample_arrays(), np.random.default_rng(3)
    order = rng.permutation(len(a["test_y"]))
    sheet, _ = make_page(a["test_x"].numpy()[order], a["test_y"].numpy()[order], rng)
    page = tmp_path / "page.png"
    assert cv2.imwrite(str(page), sheet.image)
    expected = [n.text for n in sheet.numbers]
    bin_dir = venv_with("digits")
    digits = bin_dir / "lenet-digits"

    # The bundled model through lenet_ext, with an annotated image and the JSON.
    run(digits, page, "--json", tmp_path / "page.json", "--out", tmp_path / "annotated.png",
        "--quiet", cwd=tmp_path)
    doc = json.loads((tmp_path / "page.json").read_text())
    assert doc["model"]["backend"] == "lenet_ext"
    read = [n["text"] for n in doc["items"][0]["numbers"]]
    assert sum(t in read for t in expected) >= len(expected) / 2, (expected, read)
    annotated, original = cv2.imread(str(tmp_path / "annotated.png")), cv2.imread(str(page))
    # The page with its boxes drawn, under a status bar of what was read.
    assert annotated.shape[1] == original.shape[1] and annotated.shape[0] > original.shape[0]

    # A training checkpoint as --model needs torch to read it: through lenet_ext, and --backend torch.
    for backend in ("auto", "torch"):
        out = tmp_path / f"ckpt-{backend}.json"
        run(digits, page, "--model", checkpoint, "--backend", backend, "--deskew", "--no-jitter",
            "--json", out, "--quiet", cwd=tmp_path)
        model = json.loads(out.read_text())["model"]
        assert model["backend"] == ("torch" if backend == "torch" else "lenet_ext"), model

    # A video, headless: OpenCV's decoder and encoder.
    clip = tmp_path / "clip.avi"
    frame = cv2.resize(cv2.imread(str(page)), (640, 480))
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for _ in range(3):
        writer.write(frame)
    writer.release()
    frames = tmp_path / "frames.json"
    run(digits, "--video", clip, "--headless", "--out", tmp_path / "annotated.avi", "--json", frames,
        "--max-frames", "3", "--no-jitter", "--quiet", cwd=tmp_path)
    assert len(json.loads(frames.read_text())["items"]) == 3
    cap = cv2.VideoCapture(str(tmp_path / "annotated.avi"))
    assert cap.isOpened() and cap.read()[0]
    cap.release()


def test_bench(venv_with, tmp_path, artifact):
    bin_dir = venv_with("bench")
    out = tmp_path / "bench.json"
    proc = run(bin_dir / "lenet-bench", artifact, "--seconds", "0.05", "--batch-sizes", "1,16",
               "--threads", "1", "--json", out, cwd=tmp_path)
    assert "unavailable" not in proc.stderr and "cannot run" not in proc.stderr, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert {r["engine"] for r in rows} >= BENCH_ENGINES, {r["engine"] for r in rows}
    assert {r["batch"] for r in rows} == {1, 16}


def test_serve(venv_with, tmp_path, artifact):
    """lenet-serve without torch: the protocol on an exported artifact and the shipped weights,
    /v1/read with the bundled reader model; --ray without the [ray] extra says what to install."""
    import http.client
    import re
    import signal
    import subprocess

    import cv2
    import numpy as np

    from lenet.data import mnist_sample_arrays
    from lenet.digits.kit.synth import make_page

    from .support import CLEAN_ENV

    bin_dir = venv_with("serve")
    proc = subprocess.run([bin_dir / "lenet-serve", "lenet5-mnist", "--ray"], capture_output=True,
                          text=True, env=CLEAN_ENV, cwd=tmp_path)
    assert proc.returncode == 2 and "pip install 'lenet[ray]'" in proc.stderr, proc.stderr

    server = subprocess.Popen([bin_dir / "lenet-serve", f"demo={artifact}", "lenet5-mnist", "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=CLEAN_ENV,
                              cwd=tmp_path)
    try:
        line = server.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert found, line + server.stdout.read()
        port = int(found.group(1))

        def post(path: str, body: bytes) -> tuple[int, dict]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", path, body=body)
            response = conn.getresponse()
            result = response.status, json.loads(response.read())
            conn.close()
            return result

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/static/page.js")  # the page's files are in the wheel
        assert conn.getresponse().status == 200
        conn.close()
        x = np.zeros((2, 1, 32, 32), np.float32)
        request = json.dumps({"inputs": [{"name": "input", "shape": [2, 1, 32, 32], "datatype": "FP32",
                                          "data": x.reshape(-1).tolist()}]}).encode()
        for model in ("demo", "lenet5-mnist"):
            status, doc = post(f"/v2/models/{model}/infer", request)
            assert status == 200 and [o["name"] for o in doc["outputs"]] == ["scores", "classes"], doc
        a, rng = mnist_sample_arrays(), np.random.default_rng(3)
        order = rng.permutation(len(a["test_y"]))
        sheet, _ = make_page(a["test_x"].numpy()[order], a["test_y"].numpy()[order], rng)
        status, doc = post("/v1/read", cv2.imencode(".png", sheet.image)[1].tobytes())
        assert status == 200 and doc["model"]["backend"] == "lenet_ext", doc
        read = [n["text"] for n in doc["items"][0]["numbers"]]
        assert sum(n.text in read for n in sheet.numbers) >= len(sheet.numbers) / 2, read
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
        server.stdout.close()
