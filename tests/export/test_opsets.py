"""The ONNX route across every opset --opset accepts, and a non-digit class list."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from lenet.exporters import OPSETS, write_onnx
from lenet.models import build_model
from lenet.spec import FASHION_NAMES, spec_for

from .conftest import make_model, relative_error, run_export, write_checkpoint


@pytest.fixture(scope="module")
def lenet5():
    return make_model("lenet5", seed=4)


@pytest.mark.parametrize("opset", list(OPSETS))
def test_every_accepted_opset_runs_in_onnxruntime_and_opencv(tmp_path, lenet5, opset):
    path = tmp_path / "model.onnx"
    write_onnx(lenet5, path, opset)
    assert onnx.load(str(path)).opset_import[0].version == opset
    x = np.random.default_rng(opset).uniform(-0.1, 1.175, (5, 1, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = lenet5(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert relative_error(sess.run(None, {"input": x})[0], ref) <= 1e-4
    net = cv2.dnn.readNetFromONNX(str(path))
    net.setInput(x)
    assert relative_error(np.asarray(net.forward()).reshape(5, -1), ref) <= 1e-4


def test_class_names_travel_with_a_fashion_model(tmp_path):
    torch.manual_seed(0)
    model = build_model(spec_for("lenet-relu", FASHION_NAMES)).eval()
    rc, _, err = run_export(write_checkpoint(model, tmp_path / "f.pt"), "--out", tmp_path / "art",
                            "--formats", "onnx")
    assert rc == 0, err
    m = json.loads((tmp_path / "art/manifest.json").read_text())
    assert m["spec"]["class_names"] == list(FASHION_NAMES)
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "art/model.onnx")).metadata_props}
    assert json.loads(meta["lenet.json"])["class_names"] == list(FASHION_NAMES)
