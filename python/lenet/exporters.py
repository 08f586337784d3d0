"""Turning an eval-mode LeNet into the three shipped files. One function per format; each writes
exactly one file and embeds the architecture spec under ``lenet.json``.

ONNX route: ``torch.onnx.export(..., dynamo=False)``, the TorchScript-based exporter, at opset 17
by default. Measured with torch 2.14 / OpenCV 5.0: the dynamo exporter's graphs compute the
flatten shape at run time (Shape → Concat of int64 pieces), which OpenCV DNN's importer rejects
(``concat2_layer.cpp: inputs[i] == inputs[0]``) for every arch, while the TorchScript-based graphs
load and match in OpenCV DNN and ONNX Runtime at opsets 11–20. Constant folding is off so every
initializer keeps its state-dict name and shape (``c3.weight`` stays ``[60,5,5]``; the C3 group
slices stay Slice ops) — the engine reads weights by those names. Opset 17 is a long-supported
middle (ONNX Runtime ≥ 1.12 runs it; OpenCV DNN 5.0 was measured at 11–20); every op the graphs use
exists since opset 11, so ``--opset 11`` serves older runtimes.

TorchScript: a trace in eval mode (the inference path of ``TableConv`` is gather + grouped convs;
tracing bakes in that branch). Not frozen: freezing inlines the weights and drops their names.

torch.export: batch dimension dynamic (1 … 65,536); the spec rides in the archive's extra files.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from .artifacts import SPEC_KEY, quiet_torch_deprecations

DEFAULT_OPSET = 17
OPSETS = range(11, 21)       # what the TorchScript-based exporter emits and we have checked
INPUT_NAME, OUTPUT_NAME = "input", "scores"
# Export example batch: deliberately none of the parity batch sizes (1, 7, 256), so the parity
# check proves the batch dimension really is dynamic.
EXAMPLE_BATCH = 3
MAX_BATCH = 1 << 16


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
        traced = torch.jit.trace(model.eval(), example_input(model), check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files={SPEC_KEY: model.spec.to_json()})
    write_bytes(path, buf.getvalue())


def write_onnx(model: torch.nn.Module, path: Path, opset: int = DEFAULT_OPSET) -> None:
    import onnx

    if opset not in OPSETS:
        raise ValueError(f"opset {opset} not supported; choose {OPSETS.start}..{OPSETS.stop - 1}")
    buf = io.BytesIO()
    with quiet_torch_deprecations(), torch.no_grad():
        torch.onnx.export(
            model.eval(), (example_input(model),), buf, dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=False, export_params=True, keep_initializers_as_inputs=False)
    proto = onnx.load_from_string(buf.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = SPEC_KEY, model.spec.to_json()
    proto.doc_string = f"LeNet family network ({model.spec.arch}); spec in metadata_props[{SPEC_KEY!r}]"
    onnx.checker.check_model(proto, full_check=True)
    custom = sorted({n.domain for n in proto.graph.node if n.domain not in ("", "ai.onnx")})
    if custom:
        raise ValueError(f"the ONNX graph uses non-standard operator domains: {', '.join(custom)}")
    write_bytes(path, proto.SerializeToString())


def write_pt2(model: torch.nn.Module, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        program = torch.export.export(model.eval(), (example_input(model),),
                                      dynamic_shapes={"x": {0: batch}}, strict=False)
    buf = io.BytesIO()
    torch.export.save(program, buf, extra_files={SPEC_KEY: model.spec.to_json()})
    write_bytes(path, buf.getvalue())


WRITERS = {"torchscript": write_torchscript, "onnx": write_onnx, "pt2": write_pt2}


def fsync_file(path: str | os.PathLike) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
