"""lenet-export on every arch: the files, their contracts, the manifest and the parity report."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper
import torch

from lenet.artifacts import FILES, load_artifact, load_module, quiet_torch_deprecations
from lenet.exporters import DEFAULT_OPSET
from lenet.parity import RTOL
from lenet.plain import decode_params, fold, plain_onnx_ops, plain_shapes

from .conftest import METRICS, relative_error

BATCHES = (1, 7, 256)


def eager(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def inputs(spec, batch: int, seed: int = 0) -> np.ndarray:
    pre = spec.preprocessing
    rng = np.random.default_rng(seed + batch)
    lo, hi = sorted((pre.offset, pre.offset + pre.scale))
    return rng.uniform(lo, hi, (batch, 1, spec.input_size, spec.input_size)).astype(np.float32)


def test_export_writes_every_format_and_passes_parity(exported):
    model, _, out, stdout = exported
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES.values(), "manifest.json"])
    manifest = json.loads((out / "manifest.json").read_text())
    parity = manifest["parity"]
    assert parity["passed"] and parity["tolerance"]["max_rel"] == RTOL
    assert parity["batch_sizes"] == list(BATCHES)
    assert set(parity["runtimes"]) == {"eager", "torchscript", "onnxruntime", "opencv-dnn",
                                       "torch.export"}
    for name, r in parity["runtimes"].items():
        assert r["passed"] and r["max_rel"] <= 1e-5, (name, r["max_rel"])  # float32: far under
        assert r["label_agreement"] >= 0.99
        assert {(c["inputs"], c["batch"]) for c in r["cases"]} == {
            (kind, b) for kind in ("random", "test-images") for b in BATCHES}
    # The table is printed, one row per runtime.
    for name in parity["runtimes"]:
        assert any(line.startswith(name) and line.rstrip().endswith("ok")
                   for line in stdout.splitlines()), name


def test_manifest_is_complete_and_hashes_verify(exported):
    model, ckpt, out, _ = exported
    m = json.loads((out / "manifest.json").read_text())
    assert m["spec"] == model.spec.to_dict()
    assert m["spec"]["preprocessing"] and m["spec"]["class_names"] == list(model.spec.class_names)
    assert set(m["artifacts"]) == set(FILES.values())
    for name, entry in m["artifacts"].items():
        data = (out / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
    for key in ("torch", "onnx", "onnxruntime", "lenet"):
        assert m["versions"][key]
    assert m["versions"]["onnx_opset"] == m["onnx"]["opset"] == DEFAULT_OPSET
    src = m["source"]
    assert src["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert src["bytes"] == ckpt.stat().st_size
    assert src["metrics"] == METRICS and src["final_metrics"] == METRICS[-1]
    assert src["epoch"] == 2 and src["best_accuracy"] == 0.88 and src["dataset"] == "mnist-sample"
    assert m["io"]["input"]["name"] == "input" and m["io"]["output"]["name"] == "scores"


@pytest.mark.parametrize("fmt", list(FILES))
def test_every_format_reloads_and_matches_eager(exported, fmt):
    model, _, out, _ = exported
    path = out / FILES[fmt]
    if fmt == "torchscript":
        with quiet_torch_deprecations():
            module = torch.jit.load(str(path))
        run = lambda x: eager(module, x)  # noqa: E731
    elif fmt == "pt2":
        module = torch.export.load(str(path)).module()
        run = lambda x: eager(module, x)  # noqa: E731
    else:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        run = lambda x: sess.run(None, {"input": x})[0]  # noqa: E731
    for batch in BATCHES:
        x = inputs(model.spec, batch)
        ref = eager(model, x)
        got = run(x)
        assert got.shape == (batch, model.spec.num_classes)
        assert relative_error(got, ref) <= RTOL, (fmt, batch)
    # The loader gives back exactly the checkpoint's (paper) weights under their state-dict names.
    art = load_artifact(path)
    assert art.spec == model.spec and art.format == fmt and art.manifest is not None
    expected = model.state_dict()
    assert set(art.state_dict) == set(expected)
    for name, value in art.state_dict.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, expected[name].numpy(), err_msg=name)


# The plain graph of each arch (lenet.plain): every op, counted. No weight gathering, slicing or
# reshaping at run time; one Flatten between C5 and F6; the RBF's [t, t²] is one Mul + Concat.
PLAIN_OPS = {
    "lenet5": {"Conv": 5, "Tanh": 6, "Flatten": 1, "Gemm": 2, "Mul": 1, "Concat": 1},
    "lenet5-wide": {"Conv": 5, "Tanh": 6, "Flatten": 1, "Gemm": 2, "Mul": 1, "Concat": 1},
    "lenet-d2l": {"Conv": 3, "Sigmoid": 4, "AveragePool": 2, "Flatten": 1, "Gemm": 2},
    "lenet-relu": {"Conv": 3, "Relu": 4, "MaxPool": 2, "Flatten": 1, "Gemm": 2},
}
# Run-time weight surgery the plain form must not contain, in each format's spelling.
WEIGHT_SURGERY = {"Gather", "Slice", "Reshape", "Unsqueeze", "Split", "Transpose", "ScatterND",
                  "index_select", "slice", "select", "reshape", "view", "index_copy", "unsqueeze",
                  "split", "chunk", "t", "permute"}


def test_onnx_contract(exported):
    """Standard ops only, the plain graph's weights, dynamic batch, named I/O, spec and paper
    parameters in metadata."""
    model, _, out, _ = exported
    proto = onnx.load(str(out / "model.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert {n.domain for n in proto.graph.node} <= {""}
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", DEFAULT_OPSET)]
    ops = Counter(n.op_type for n in proto.graph.node)
    assert ops == PLAIN_OPS[model.spec.arch] == plain_onnx_ops(model.spec), ops
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    assert {k: v.shape for k, v in inits.items()} == plain_shapes(model.spec)
    folded = fold(model.spec, {k: v.numpy() for k, v in model.state_dict().items()})
    for name, value in folded.items():
        np.testing.assert_array_equal(inits[name], value, err_msg=name)
    (inp,), (outp,) = proto.graph.input, proto.graph.output
    size = model.spec.input_size
    assert inp.name == "input" and outp.name == "scores"
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value
    assert [d.dim_value for d in dims[1:]] == [1, size, size]
    assert outp.type.tensor_type.shape.dim[0].dim_param
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["lenet.json"]) == model.spec.to_dict()
    params = decode_params(model.spec, meta["lenet.params"])
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(params[name], value.numpy(), err_msg=name)


def aten_ops(graph) -> Counter:
    return Counter(n.kind().split("::")[1] for n in graph.nodes()
                   if n.kind().startswith("aten::"))


def test_torchscript_and_pt2_graphs_are_plain(exported):
    model, _, out, _ = exported
    n_conv = 5 if model.spec.pooling == "trainable" else 3
    with quiet_torch_deprecations():
        ts = torch.jit.load(str(out / "model.torchscript.pt"))
    ops = aten_ops(ts.inlined_graph)
    assert ops["_convolution"] == n_conv and ops["linear"] == 2, ops
    assert not set(ops) & WEIGHT_SURGERY, ops
    program = torch.export.load(str(out / "model.pt2"))
    targets = Counter(str(n.target).split(".")[1] for n in program.graph.nodes
                      if n.op == "call_function" and str(n.target).startswith("aten."))
    assert targets["conv2d"] == n_conv and targets["linear"] == 2, targets
    assert not set(targets) & WEIGHT_SURGERY, targets
    assert set(program.state_dict) == set(plain_shapes(model.spec))


def test_opencv_dnn_runs_the_onnx(exported):
    model, _, out, _ = exported
    net = cv2.dnn.readNetFromONNX(str(out / "model.onnx"))
    for batch in (1, 7):
        x = inputs(model.spec, batch, seed=5)
        net.setInput(x)
        got = np.asarray(net.forward()).reshape(batch, -1)
        assert relative_error(got, eager(model, x)) <= RTOL


def test_spec_travels_in_torchscript_and_pt2(exported):
    model, _, out, _ = exported
    extra = {"lenet.json": ""}
    with quiet_torch_deprecations():
        torch.jit.load(str(out / "model.torchscript.pt"), _extra_files=extra)
    assert json.loads(extra["lenet.json"]) == model.spec.to_dict()
    extra = {"lenet.json": ""}
    torch.export.load(str(out / "model.pt2"), extra_files=extra)
    assert json.loads(extra["lenet.json"]) == model.spec.to_dict()


def test_load_module_and_dir_load(exported):
    model, _, out, _ = exported
    art = load_artifact(out)
    assert art.format == "onnx" and art.file == out / "model.onnx" and art.spec == model.spec
    module = load_module(out)
    assert not module.training
    x = inputs(model.spec, 7, seed=9)
    np.testing.assert_array_equal(eager(module, x), eager(model, x))
