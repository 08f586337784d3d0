"""``lenet-export --precision int8``: calibrate on training images, write the QDQ ONNX model, and
check that ONNX Runtime running it and the INT8 engine agree on the test images.

* Calibration (:func:`lenet.quant.calibrate`) reads the dataset's *training* split only (all of it:
  60,000 images for MNIST); the test split is used for the parity check alone.
* The manifest's ``int8`` block records the recipe, which images calibrated it (dataset, split,
  count, SHA-256 of their pixels) and every scale; the INT8 engine reads its scales from there.
* Parity: both runtimes on every test image, fed the same float32 input. They must agree on every
  label, and every score within one quantization step of the last quantized tensor
  (:func:`score_step`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from . import qdq, quant
from .artifacts import INT8_FILE as INT8_ONNX, SPEC_KEY
from .plain import PARAMS_KEY, TANH_AMPLITUDE, encode_params
from .spec import ArchSpec

CALIBRATION_DATASETS = ("mnist", "fashion-mnist")


def score_step(prototypes: np.ndarray) -> float:
    """How far one step of one F6 code (A/127) can move a score: |∂(−Σ(u−P)²)/∂u| ≤ 2(A + max|P|)."""
    return float(2.0 * (TANH_AMPLITUDE + np.abs(prototypes).max()) * TANH_AMPLITUDE / 127.0)


def training_images(dataset: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training images, test images, test labels), uint8/int64 numpy."""
    from .data import load_dataset

    if dataset not in CALIBRATION_DATASETS:
        raise ValueError(f"int8 calibration needs the training images of the dataset the model was "
                         f"trained on; {dataset!r} is not one of {', '.join(CALIBRATION_DATASETS)} "
                         "(pass --calibration-dataset)")
    ds = load_dataset(dataset, data_dir)
    return ds.train.images.numpy(), ds.test.images.numpy(), ds.test.labels.numpy()


def write(spec: ArchSpec, params: Mapping[str, np.ndarray], train: np.ndarray, dataset: str,
          staging: Path, progress: Callable[[str], None]) -> tuple[dict[str, Any], Path]:
    """Calibrate, quantize, write ``staging/model.int8.onnx``; return (manifest block, path)."""
    t0 = time.perf_counter()
    progress(f"[int8] calibrating on {len(train):,} {dataset} training images")
    pre_scales = quant.calibrate(spec, params, train)
    block = quant.manifest_block(spec, params, pre_scales,
                                 quant.calibration_record(train, dataset, "train"))
    pre_checked, plain = quant.read_block(spec, params, block)
    q = quant.quantize(spec, plain, pre_checked, params)
    weight_scales = {k: np.asarray(v, np.float32) for k, v in block["scales"]["weights"].items()}
    model = qdq.build(spec, q, pre_checked, weight_scales,
                      {SPEC_KEY: spec.to_json(), PARAMS_KEY: encode_params(spec, params)})
    path = staging / INT8_ONNX
    path.write_bytes(model.SerializeToString())
    progress(f"    {INT8_ONNX}: {path.stat().st_size:,} bytes in {time.perf_counter() - t0:.1f} s")
    return block, path


def check_parity(spec: ArchSpec, params: Mapping[str, np.ndarray], block: Mapping[str, Any],
                 path: Path, test: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """ONNX Runtime on the QDQ file against the INT8 engine (and the FP32 engine for accuracy) on
    the test images; raises ValueError when labels or scores disagree past one step."""
    import onnxruntime as ort

    import lenet_ext
    from lenet_ext import _core
    from lenet_ext.loaders import model_arrays

    x = quant.model_input(spec, test)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    ort_scores = np.concatenate([session.run(None, {qdq.INPUT_NAME: x[i:i + 1000]})[0]
                                 for i in range(0, len(x), 1000)])
    arrays = model_arrays(spec, params)
    engine = _core.Int8Engine(*arrays, quant.engine_arrays(spec, params, block), 0, "")
    int8_scores = engine.scores(x)
    int8_u8 = engine.scores(test)
    fp32 = lenet_ext.from_state_dict(spec, params).scores(test)
    step = score_step(params["output.prototypes"])
    diff = float(np.abs(int8_scores - ort_scores).max())
    agree = float((int8_scores.argmax(1) == ort_scores.argmax(1)).mean())
    report = {
        "images": f"{len(test):,} test images (never used for calibration), float32 input",
        "onnxruntime": ort.__version__,
        "label_agreement": agree,
        "max_score_difference": diff,
        "score_step": step,
        "uint8_input_equals_float32_input": bool(np.array_equal(int8_u8, int8_scores)),
        "accuracy": {"int8_engine": float((int8_scores.argmax(1) == labels).mean()),
                     "int8_onnxruntime": float((ort_scores.argmax(1) == labels).mean()),
                     "fp32_engine": float((fp32.argmax(1) == labels).mean())},
    }
    if agree < 1.0 or diff > step:
        raise ValueError(f"int8 parity failed: ONNX Runtime on {INT8_ONNX} and the INT8 engine agree "
                         f"on {agree:.2%} of the labels, scores differ by up to {diff:.4g} "
                         f"(one step: {step:.4g})")
    return report
