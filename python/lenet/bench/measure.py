"""What every benchmark here shares: the result row, the timer, the machine's matmul rate, the
model's real multiply-accumulates and the inputs (the spec's preprocessing contract)."""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..spec import ArchSpec

CPU_BATCH_SIZES = [1, 16, 256, 4096]  # lenet-bench's default (the CUDA bench swaps in its own)


@dataclass
class Row:
    batch: int
    engine: str
    config: str
    images_per_s: float
    p50_ms: float
    ratio_to_best_peer: float | None = None
    fraction_of_sgemm: float | None = None
    peer: bool = True         # False: lenet_ext itself
    reference: bool = False   # shown for comparison, not a shipped-artifact peer (no ratio base)
    p99_ms: float | None = None
    int8: bool = False        # an INT8 row: its ratio is to the best INT8 peer (ORT on the QDQ model)


def model_macs(spec: ArchSpec) -> int:
    """Multiply-accumulates of one image, counting only connections that exist."""
    c3_pairs = 60 if spec.c3_table == "lecun" else 96
    return (6 * 28 * 28 * 25 + c3_pairs * 10 * 10 * 25 + 120 * 400 + 84 * 120
            + spec.num_classes * 84)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sgemm_gflops(threads: int, seconds: float = 1.0) -> tuple[float, str]:
    """Best FP32 matmul rate this process reaches (numpy's BLAS and torch's, several sizes)."""
    import torch

    torch.set_num_threads(threads)
    best, how = 0.0, ""
    for n in (1024, 2048):
        a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
        b = a.copy()
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        for name, fn in (("numpy", lambda: a @ b), ("torch", lambda: torch.mm(ta, tb))):
            fn()
            times = []
            t_end = time.perf_counter() + seconds / 4
            while time.perf_counter() < t_end or len(times) < 3:
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            rate = 2 * n**3 / min(times) / 1e9
            if rate > best:
                best, how = rate, f"{name} sgemm {n}x{n}"
    return best, how


def time_calls(fn: Callable[[], Any], batch: int, seconds: float, rounds: int = 5
               ) -> tuple[float, float, float]:
    """(images/s, p50 and p99 seconds per call) after a warm-up.

    The budget is split into rounds and images/s is the best round's rate: on a shared machine
    other processes only ever slow a round down, so the best round is the least disturbed
    estimate. Every engine (ours and the peers) is measured the same way."""
    fn()
    fn()
    times: list[float] = []
    best = 0.0
    for _ in range(rounds):
        t_end = time.perf_counter() + seconds / rounds
        start = len(times)
        while len(times) == start or time.perf_counter() < t_end:
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        best = max(best, batch * (len(times) - start) / sum(times[start:]))
    return best, statistics.median(times), float(np.percentile(times, 99))


def normalize(images: np.ndarray, spec: ArchSpec) -> np.ndarray:
    """The spec's preprocessing contract (lenet.data.preprocess): uint8 [N,28,28] -> float32 [N,1,S,S]."""
    import torch

    from ..data import preprocess

    return np.ascontiguousarray(preprocess(torch.from_numpy(images), spec).numpy(), dtype=np.float32)


def deployment_model(artifact: Path):
    """PyTorch eager at its best: the plain deployment module (what the artifacts ship) with the
    artifact's verified weights, eval mode, CPU."""
    from ..artifacts import load_artifact
    from ..exporters import PlainLeNet
    from ..plain import fold

    art = load_artifact(artifact)
    return PlainLeNet(art.spec, fold(art.spec, art.state_dict)).eval()
