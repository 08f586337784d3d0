"""lenet-bench --device cuda: without a GPU it says why and exits 2; with one it runs (marked
cuda)."""

from __future__ import annotations

import json

import pytest

import lenet_ext
from lenet import bench
from lenet.bench import cuda as bench_cuda

from .conftest import make_model, write_artifact


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return write_artifact(make_model("lenet5", seed=2), tmp_path_factory.mktemp("bench-cuda"))


def test_without_gpu_clear_message(artifact, capsys):
    if bench_cuda.no_gpu_reason() is None:
        pytest.skip("a usable GPU is present")
    assert bench.main([str(artifact), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "cannot run" in err and "GPU" in err


@pytest.mark.cuda
@pytest.mark.skipif(lenet_ext.build_info()["cuda_devices"] < 1, reason="needs a CUDA device")
def test_runs_on_gpu(artifact, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main([str(artifact), "--device", "cuda", "--batch-sizes", "1,33,4096",
                       "--seconds", "0.05", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    engines = {r["engine"] for r in rows}
    assert {"lenet_ext", "PyTorch eager", "PyTorch CUDA graph"} <= engines
    assert all(r["images_per_s"] > 0 for r in rows)
