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


def test_bench_int8_rows(tmp_path, capsys):
    """An artifact with an int8 block and model.int8.onnx gets INT8 rows: the engine against ONNX
    Runtime on the QDQ model, every row fed float32, p99 latency recorded."""
    import numpy as np

    import lenet_ext
    from lenet import export_int8
    from lenet.artifacts import INT8_FILE, file_entry, load_artifact

    if lenet_ext.build_info()["int8_isa"] is None:
        pytest.skip("no INT8 kernels on this CPU")
    art = write_artifact(make_model("lenet5"), tmp_path / "art")
    a = load_artifact(art)
    train = np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8)
    block, path = export_int8.write(a.spec, a.state_dict, train, "random", art, lambda _: None)
    manifest = json.loads((art / "manifest.json").read_text())
    manifest["int8"] = block
    manifest["artifacts"][INT8_FILE] = {**file_entry(path), "format": "onnx-qdq-int8"}
    (art / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "bench.json"
    assert bench.main([str(art), "--batch-sizes", "1,17", "--seconds", "0.02", "--threads", "1",
                       "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    int8 = [r for r in rows if r["int8"]]
    assert {r["engine"] for r in int8} == {"lenet_ext int8", "ORT int8 QDQ"}
    assert all("float32 in" in r["config"] for r in rows if r["engine"] in ("lenet_ext", "lenet_ext int8"))
    assert all(r["p99_ms"] >= r["p50_ms"] for r in rows if r["p99_ms"] is not None)
    assert "INT8 engine" in capsys.readouterr().out
