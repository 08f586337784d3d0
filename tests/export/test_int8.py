"""lenet-export --precision int8: the QDQ ONNX model computes the INT8 engine's math (ONNX Runtime
against the NumPy int8 reference, no dataset needed), calibration reads training images only, and
what cannot be exported in int8 is refused before anything is written."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from lenet import export_int8, quant
from lenet.artifacts import INT8_FILE

from ..engine.int8_reference import scores as reference_scores
from ..support import make_model, run_export, write_checkpoint
from ..test_mnist import HAVE_MNIST

needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="full MNIST is not in data/ (make data)")


def params_of(model):
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("seed", [0, 3])
def test_qdq_model_runs_the_engines_math(tmp_path, seed):
    import onnxruntime as ort

    model = make_model("lenet5", seed=seed)
    spec, params = model.spec, params_of(model)
    rng = np.random.default_rng(seed)
    train = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)
    block, path = export_int8.write(spec, params, train, "random", tmp_path, lambda _: None)
    assert path.name == INT8_FILE and block["calibration"]["split"] == "train"
    assert block["calibration"]["images"] == 300
    proto = onnx.load(str(path))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm", "Tanh"} <= ops
    assert {n.domain for n in proto.graph.node} <= {"", "ai.onnx"}
    assert {p.key for p in proto.metadata_props} >= {"lenet.json", "lenet.params"}
    q = quant.engine_arrays(spec, params, block)
    x = quant.model_input(spec, rng.integers(0, 256, (200, 28, 28), dtype=np.uint8))
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    want = reference_scores(spec, q, x)
    step = export_int8.score_step(params["output.prototypes"])
    assert np.abs(got - want).max() <= step
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.99


def test_calibration_scales_follow_the_recipe():
    model = make_model("lenet5", seed=1)
    spec, params = model.spec, params_of(model)
    images = np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8)
    scales = quant.calibrate(spec, params, images, chunk=16)
    pre = quant.float_preactivations(spec, quant.plain_weights(spec, params), quant.model_input(spec, images))
    for k in quant.LAYERS:
        peak = min(float(np.abs(pre[k]).max()), quant.PREACT_CLIP)
        assert scales[k] == pytest.approx(peak / 127, rel=1e-6)


def test_unsupported_arch_is_refused_before_writing(tmp_path):
    ckpt = write_checkpoint(make_model("lenet-relu"), tmp_path / "relu.pt")
    rc, _, err = run_export(ckpt, "--out", tmp_path / "art", "--precision", "int8")
    assert rc == 1 and "precision='int8' is not available for lenet-relu" in err
    assert not (tmp_path / "art").exists()


def test_unknown_calibration_dataset_is_refused(tmp_path):
    ckpt = write_checkpoint(make_model("lenet5"), tmp_path / "l5.pt")
    rc, _, err = run_export(ckpt, "--out", tmp_path / "art", "--precision", "int8",
                            "--calibration-dataset", "mnist-sample")
    assert rc == 1 and "'mnist-sample' is not one of mnist, fashion-mnist" in err
    assert not (tmp_path / "art").exists()


@needs_mnist
@pytest.mark.slow
def test_export_int8_end_to_end(tmp_path):
    """The shipped weights, calibrated on the 60,000 training images; parity on the 10,000 test digits."""
    import lenet_ext

    rc, out, err = run_export("lenet5-mnist", "--out", tmp_path / "art", "--precision", "int8",
                              "--formats", "onnx")
    assert rc == 0, err
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    block = manifest["int8"]
    assert block["calibration"]["dataset"] == "mnist" and block["calibration"]["images"] == 60000
    parity = block["parity"]
    assert parity["label_agreement"] == 1.0 and parity["max_score_difference"] <= parity["score_step"]
    acc = parity["accuracy"]
    assert abs(acc["int8_engine"] - acc["fp32_engine"]) <= 0.001
    assert INT8_FILE in manifest["artifacts"]
    engine = lenet_ext.load(tmp_path / "art", precision="int8")
    assert engine.precision == "int8"
