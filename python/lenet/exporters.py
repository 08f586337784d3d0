"""Turning an eval-mode LeNet into the three shipped files. One function per format; each writes
exactly one file holding the plain deployment graph (:mod:`lenet.plain`: dense C3, pooling as
depthwise convolutions, the squash constants folded into the weights, the RBF as a Gemm), the
architecture spec under ``lenet.json`` and the paper's parameters under ``lenet.params`` (raw
float32 as base64, so a loader recovers them exactly without running anything from the file).

ONNX route: ``torch.onnx.export(..., dynamo=False)``, the TorchScript-based exporter, at opset 17
by default, with constant folding on. Measured with torch 2.14 / OpenCV 5.0: the dynamo exporter's
graphs compute the flatten shape at run time (Shape → Concat of int64 pieces), which OpenCV DNN's
importer rejects (``concat2_layer.cpp: inputs[i] == inputs[0]``), while the TorchScript-based
graphs load and match in OpenCV DNN and ONNX Runtime at opsets 11–20. Every op the plain graph
uses exists since opset 11, so ``--opset 11`` serves older runtimes. The parameters ride in
``metadata_props``: initializers that no node reads would make ONNX Runtime warn and drop them.

TorchScript: a trace of the plain module (weights stay named attributes; ``lenet-bench`` freezes
it at load). torch.export: batch dimension dynamic (1 … 65,536).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .artifacts import SPEC_KEY, quiet_torch_deprecations
from .plain import PARAMS_KEY, encode_params, fold, plain_shapes
from .spec import ArchSpec

DEFAULT_OPSET = 17
OPSETS = range(11, 21)       # what the TorchScript-based exporter emits and we have checked
INPUT_NAME, OUTPUT_NAME = "input", "scores"
# Export example batch: deliberately none of the parity batch sizes (1, 7, 256), so the parity
# check proves the batch dimension really is dynamic.
EXAMPLE_BATCH = 3
MAX_BATCH = 1 << 16


class PlainLeNet(nn.Module):
    """The deployment form (see :mod:`lenet.plain`): only standard layers, weights folded.

    Built from a training model's paper parameters; computes the same scores."""

    def __init__(self, spec: ArchSpec, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.spec = spec
        for name, shape in plain_shapes(spec).items():
            layer, kind = name.split(".")
            if not hasattr(self, layer):
                self.add_module(layer, nn.Module())
            value = torch.from_numpy(np.array(weights[name], dtype=np.float32))
            assert tuple(value.shape) == shape, (name, value.shape, shape)
            getattr(self, layer).register_parameter(kind, nn.Parameter(value, requires_grad=False))
        self.act = {"scaled_tanh": torch.tanh, "sigmoid": torch.sigmoid,
                    "relu": torch.relu}[spec.activation]

    def pool(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        if self.spec.pooling == "trainable":
            conv = getattr(self, layer)
            return self.act(F.conv2d(x, conv.weight, conv.bias, stride=2, groups=x.shape[1]))
        return F.avg_pool2d(x, 2) if self.spec.pooling == "avg" else F.max_pool2d(x, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(F.conv2d(x, self.conv1.weight, self.conv1.bias, padding=self.spec.c1_padding))
        x = self.pool(x, "pool2")
        x = self.act(F.conv2d(x, self.conv3.weight, self.conv3.bias))
        x = self.pool(x, "pool4")
        x = self.act(F.conv2d(x, self.conv5.weight, self.conv5.bias)).flatten(1)
        x = self.act(F.linear(x, self.fc6.weight, self.fc6.bias))
        if self.spec.head == "rbf":
            x = torch.cat([x, x * x], dim=1)  # the distances' cross and norm terms in one Gemm
        return F.linear(x, self.out.weight, self.out.bias)


def paper_params(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().float().numpy() for k, v in model.state_dict().items()}


def plain_module(model: torch.nn.Module) -> PlainLeNet:
    """The deployment module of a training model (which keeps the paper parameterization)."""
    return PlainLeNet(model.spec, fold(model.spec, paper_params(model))).eval()


def extra_files(model: torch.nn.Module) -> dict[str, str]:
    """What rides next to the graph in each file: the spec and the paper's parameters."""
    return {SPEC_KEY: model.spec.to_json(),
            PARAMS_KEY: encode_params(model.spec, paper_params(model))}


def example_input(model: torch.nn.Module) -> torch.Tensor:
    size = model.spec.input_size
    return torch.zeros(EXAMPLE_BATCH, 1, size, size)


def write_bytes(path: Path, data: bytes) -> None:
    """Every format is serialized in memory (a LeNet is ~250 kB) and written here by Python: a
    full disk then raises an OSError naming the file. torch's own zip writer, given a path, throws
    from its destructor on a failed write, which aborts the process (std::terminate)."""
    with open(path, "wb") as f:
        f.write(data)


def write_torchscript(model: torch.nn.Module, path: Path) -> None:
    with quiet_torch_deprecations(), torch.no_grad():
        traced = torch.jit.trace(plain_module(model), example_input(model), check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files=extra_files(model))
    write_bytes(path, buf.getvalue())


def write_onnx(model: torch.nn.Module, path: Path, opset: int = DEFAULT_OPSET) -> None:
    import onnx

    if opset not in OPSETS:
        raise ValueError(f"opset {opset} not supported; choose {OPSETS.start}..{OPSETS.stop - 1}")
    buf = io.BytesIO()
    with quiet_torch_deprecations(), torch.no_grad():
        torch.onnx.export(
            plain_module(model), (example_input(model),), buf, dynamo=False,
            opset_version=opset, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True, export_params=True, keep_initializers_as_inputs=False)
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in extra_files(model).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"LeNet family network ({model.spec.arch}); spec in metadata_props[{SPEC_KEY!r}]"
    onnx.checker.check_model(proto, full_check=True)
    custom = sorted({n.domain for n in proto.graph.node if n.domain not in ("", "ai.onnx")})
    if custom:
        raise ValueError(f"the ONNX graph uses non-standard operator domains: {', '.join(custom)}")
    write_bytes(path, proto.SerializeToString())


def write_pt2(model: torch.nn.Module, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        program = torch.export.export(plain_module(model), (example_input(model),),
                                      dynamic_shapes={"x": {0: batch}}, strict=False)
    buf = io.BytesIO()
    torch.export.save(program, buf, extra_files=extra_files(model))
    write_bytes(path, buf.getvalue())


WRITERS = {"torchscript": write_torchscript, "onnx": write_onnx, "pt2": write_pt2}
