"""lenet-bench runs end to end (a smoke test: speed itself is measured by the tool, not here)."""

from __future__ import annotations

import json

import pytest

from lenet import bench

from .conftest import make_model, write_artifact


def test_bench_smoke(tmp_path, capsys):
    art = write_artifact(make_model("lenet5"), tmp_path / "art")
    out = tmp_path / "bench.json"
    assert bench.main([str(art), "--batch-sizes", "1,3", "--seconds", "0.02", "--threads", "1",
                       "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    engines = {r["engine"] for r in report["rows"]}
    assert {"lenet_ext", "PyTorch eager", "TorchScript", "ONNX Runtime", "OpenCV DNN"} <= engines
    # The ONNX peers run the shipped plain graph and say how many nodes it has.
    onnx_rows = [r for r in report["rows"] if r["engine"] in ("ONNX Runtime", "OpenCV DNN")]
    assert onnx_rows and all(r["config"].startswith("16 nodes") for r in onnx_rows)
    for batch in (1, 3):
        rows = [r for r in report["rows"] if r["batch"] == batch]
        best = max(r["images_per_s"] for r in rows if r["peer"] and not r["reference"])
        for r in rows:
            assert r["ratio_to_best_peer"] == pytest.approx(r["images_per_s"] / best)
    assert report["macs_per_image"] == 326_520 and report["sgemm_gflops"] > 0
    assert "vs best peer" in capsys.readouterr().out


def test_bench_rejects_non_artifact(tmp_path):
    with pytest.raises(SystemExit):
        bench.main([str(tmp_path)])
