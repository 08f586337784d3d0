"""The CUDA side of an engine: numpy batches go through the core's pinned staging buffers; torch
CUDA tensors (any DLPack producer with a torch-like interface) go to the kernels zero-copy, on the
caller's current stream, and the scores come back as a tensor on the input's device.

A call on CUDA tensors only enqueues work: it never waits for the GPU, so it overlaps the caller's
GPU work and can be captured in a CUDA graph (``torch.cuda.graph``). Its scratch memory comes from
torch's allocator (graph-safe). For float32 input the first kernel records the first image with a
NaN/Inf pixel on the GPU; ``check_finite()`` waits for that and raises. uint8 pixels are always
finite."""

from __future__ import annotations

from typing import Any

import numpy as np

from lenet.spec import ArchSpec


def _version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


def no_device_message(info: dict[str, Any]) -> str:
    cuda = info.get("cuda_info", {})
    why = cuda.get("error") or "no CUDA device found"
    if "InsufficientDriver" in why and cuda.get("runtime_version"):
        have = cuda.get("driver_version", 0)
        why += (f"; this lenet_ext needs a driver for CUDA {_version(cuda['runtime_version'])} or "
                f"newer, " + (f"the installed driver supports CUDA {_version(have)}" if have
                              else "no NVIDIA driver is installed"))
    return f"device='cuda': no CUDA device is available ({why}); use device='cpu'"


def is_cuda_tensor(x: Any) -> bool:
    return getattr(getattr(x, "device", None), "type", None) == "cuda"


class CudaCore:
    """Wraps ``_core.CudaEngine`` with the same surface as the CPU core (``scores``, ``threads``,
    ``isa``) plus device tensors."""

    _NONE_BAD = 0x7F7F7F7F  # the flag's value when no image had a NaN/Inf pixel

    def __init__(self, engine: Any, spec: ArchSpec) -> None:
        self._engine = engine
        self._spec = spec
        self._first_bad: Any = None  # torch int32 [1] on the device, written by float32 calls
        self.threads = 1
        self.isa = f"cuda:{engine.device} ({engine.device_name})"
        self.device_index = engine.device
        self.num_classes = engine.num_classes
        self.input_size = engine.input_size

    def scores(self, x: Any) -> Any:
        if is_cuda_tensor(x):
            return self._scores_tensor(x)
        return self._engine.scores(x)  # a numpy batch (Engine._prepare)

    def _scores_tensor(self, x: Any) -> Any:
        """A CUDA tensor, zero-copy; dtype, shape and device are checked by the core
        (csrc/engine/input.cpp, the same rules as for numpy batches)."""
        import torch

        if x.requires_grad:
            x = x.detach()
        x = x.contiguous()  # non-contiguous views: one copy on the GPU
        n = x.shape[0] if x.dim() else 0
        out = torch.empty((n, self.num_classes), dtype=torch.float32, device=x.device)
        stream = torch.cuda.current_stream(x.device).cuda_stream
        # DLPack reserves 0; the legacy default stream is 1 there.
        dl_stream = stream if stream != 0 else 1
        work = torch.empty((self._engine.workspace_rows(n), self._engine.workspace_cols),
                           dtype=torch.float32, device=x.device)
        bad = None
        if x.dtype == torch.float32 and n:  # an empty batch launches nothing: leave the flag
            if self._first_bad is None:
                self._first_bad = torch.empty(1, dtype=torch.int32, device=x.device)
            bad = self._first_bad.__dlpack__(stream=dl_stream)
        self._engine.scores_dlpack(x.__dlpack__(stream=dl_stream), out.__dlpack__(stream=dl_stream),
                                   stream, work.__dlpack__(stream=dl_stream), bad)
        return out

    def check_finite(self) -> None:
        """Waits for the last float32 CUDA-tensor call and raises ValueError if an image of it had a
        NaN or Inf pixel (host batches are checked by every call)."""
        if self._first_bad is None:
            return
        first = int(self._first_bad.item())  # synchronizes with the flag's stream
        if first != self._NONE_BAD:
            raise ValueError(f"input image {first} contains NaN or Inf")

