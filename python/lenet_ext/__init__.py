"""lenet_ext: fast batched LeNet inference (C++ core; numpy in, numpy out).

    engine = lenet_ext.load("artifacts/demo")        # dir, .onnx, .torchscript.pt or .pt2
    labels, scores = engine.predict(images_uint8)     # [N,28,28] raw pixels, or float32 [N,1,S,S]

Loading needs no torch for any format: :mod:`lenet.artifacts` reads ONNX as protobuf and the
``.torchscript.pt``/``.pt2`` zip archives directly, and never runs code from a model file.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from lenet.spec import ArchSpec

from ._core import CpuEngine, Int8Engine, __version__, build_info
from .engine import Engine, Prediction
from .loaders import ArtifactError, as_spec, load_arrays, load_int8_arrays, model_arrays

__all__ = ["ArtifactError", "Engine", "Prediction", "__version__", "build_info", "from_state_dict",
           "load"]

DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "int8")


def _threads(threads: int | None) -> int:
    if threads is None:
        # The CPUs this process may run on (a container's cpuset, taskset), not the machine's.
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            return 0  # the core uses std::thread::hardware_concurrency()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 1024:
        raise ValueError(f"threads must be an integer in 1..1024 or None, got {threads!r}")
    return threads


def _make(arrays: tuple[dict[str, Any], dict[str, Any], Any], device: str, threads: int | None,
          isa: str | None) -> Engine:
    spec_dict, weights, connected = arrays
    spec = ArchSpec.from_dict(spec_dict)
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected 'cpu' or 'cuda'")
    if device == "cuda":
        from . import _core
        info = build_info()
        if not info["cuda"] or not hasattr(_core, "CudaEngine"):
            raise RuntimeError("device='cuda': this lenet_ext was built without CUDA "
                               "(no nvcc at build time); use device='cpu'")
        from .cuda import CudaCore, no_device_message
        if info.get("cuda_devices", 0) < 1:
            raise RuntimeError(no_device_message(info))
        core = CudaCore(_core.CudaEngine(spec_dict, weights, connected), spec)
        return Engine(core, spec, device)
    core = CpuEngine(spec_dict, weights, connected, _threads(threads), isa or "")
    return Engine(core, spec, device)


def load(path: str | os.PathLike[str], device: str = "cpu", threads: int | None = None, *,
         isa: str | None = None, precision: str = "fp32") -> Engine:
    """An engine for an artifact directory (manifest + model.onnx), ``.onnx``, ``.torchscript.pt``
    or ``.pt2``. Checks the spec and the manifest's hashes. ``threads=None``: one per CPU.
    ``isa`` (``avx512``/``avx2``/``baseline``; for int8 ``avx512vnni``/``avx512bw``) forces a
    kernel set (tests, comparisons); one this CPU cannot run is a ValueError naming it.
    ``precision="int8"``: the INT8 engine (CPU), on the scales ``lenet-export --precision int8``
    calibrated and recorded in the artifact directory's manifest."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected 'fp32' or 'int8'")
    if precision == "int8":
        if device != "cpu":
            raise ValueError(f"precision='int8' runs on the CPU only, not device={device!r}")
        spec_dict, weights, connected, quant = load_int8_arrays(path)
        core = Int8Engine(spec_dict, weights, connected, quant, _threads(threads), isa or "")
        return Engine(core, ArchSpec.from_dict(spec_dict), device)
    return _make(load_arrays(path), device, threads, isa)


def from_state_dict(spec: ArchSpec | Mapping[str, Any] | str, state_dict: Mapping[str, Any],
                    device: str = "cpu", threads: int | None = None, *,
                    isa: str | None = None) -> Engine:
    """An engine straight from a spec and a PyTorch-style state dict (numpy arrays or tensors)."""
    return _make(model_arrays(as_spec(spec), state_dict), device, threads, isa)
