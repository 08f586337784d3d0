"""The engine object: numpy conversion in front of the C++ core, which checks every batch."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from lenet.spec import ArchSpec


class Prediction(NamedTuple):
    """``labels``: int64 [N], the most likely class; ``scores``: float32 [N, classes]
    (larger = more likely; for the RBF head, minus the distances to the prototypes)."""

    labels: np.ndarray
    scores: np.ndarray


def _as_numpy(x: Any) -> np.ndarray:
    """numpy arrays as they are; torch tensors and other DLPack producers without a copy."""
    if isinstance(x, np.ndarray):
        return x
    mod = type(x).__module__
    if mod.startswith("torch"):
        device = getattr(x, "device", None)
        if device is not None and getattr(device, "type", "cpu") != "cpu":
            raise ValueError(f"input tensor is on {device}; move it to the CPU (or load the engine "
                             "with device='cuda')")
        if getattr(x, "requires_grad", False):
            x = x.detach()
    if hasattr(x, "__dlpack__"):
        try:
            return np.from_dlpack(x)
        except (TypeError, BufferError, RuntimeError, ValueError):
            pass
    try:
        if mod.startswith("torch"):
            return x.resolve_conj().resolve_neg().numpy()
        return np.asarray(x)
    except (TypeError, RuntimeError, ValueError) as exc:
        raise ValueError(f"cannot read input of type {type(x).__name__} "
                         f"(dtype {getattr(x, 'dtype', '?')}): {exc}") from None


class Engine:
    """A loaded network. ``scores(x)`` / ``predict(x)`` take a batch:

    * uint8 raw pixels ``[N, 28, 28]`` or ``[N, S, S]`` (S = the spec's ``input_size``; a
      ``[N, 1, H, W]`` channel axis is accepted too): the spec's preprocessing (ink polarity,
      padding, scale/offset) is applied inside the first kernel;
    * float32 ``[N, 1, S, S]`` already normalized.

    numpy arrays or torch tensors (CPU, through DLPack, no copy when contiguous); any strides.
    N = 0 returns empty results. Thread-safe: one engine may be called from several threads.
    """

    def __init__(self, core: Any, spec: ArchSpec, device: str) -> None:
        self._core = core
        self.spec = spec
        self.device = device
        self.num_classes = spec.num_classes
        self.class_names = spec.class_names

    @property
    def threads(self) -> int:
        return getattr(self._core, "threads", 1)

    @property
    def isa(self) -> str:
        return getattr(self._core, "isa", self.device)

    @property
    def precision(self) -> str:
        return getattr(self._core, "precision", "fp32")

    def __repr__(self) -> str:
        return (f"<lenet_ext.Engine {self.spec.arch} device={self.device} isa={self.isa} "
                f"precision={self.precision} threads={self.threads}>")

    def _prepare(self, x: Any) -> np.ndarray:
        """numpy, C-contiguous. Which dtypes, ranks and sizes are accepted is the core's rule
        (csrc/engine/input.cpp, shared with the CUDA entries), not repeated here."""
        a = _as_numpy(x)
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)

    def scores(self, x: Any) -> np.ndarray:
        """float32 [N, classes], larger = more likely."""
        if type(x) is np.ndarray and x.flags.c_contiguous:  # the common case, straight through
            return self._core.scores(x)
        if self.device == "cuda" and getattr(getattr(x, "device", None), "type", "cpu") == "cuda":
            return self._core.scores(x)  # device tensors go to the CUDA core as they are (DLPack)
        return self._core.scores(self._prepare(x))

    def check_finite(self) -> None:
        """device="cuda" with CUDA float32 tensors: ``scores`` does not wait for the GPU, so it
        cannot raise for NaN/Inf pixels; this waits for the last such call and raises ValueError
        naming its first bad image. Every other input is checked by ``scores`` itself."""
        check = getattr(self._core, "check_finite", None)
        if check is not None:
            check()

    def predict(self, x: Any) -> Prediction:
        s = self.scores(x)
        if not isinstance(s, np.ndarray):  # CUDA tensor in, CUDA tensor out (device="cuda")
            return Prediction(s.argmax(dim=1).long(), s)
        return Prediction(s.argmax(axis=1).astype(np.int64), s)

    __call__ = scores
