"""lenet-bench --device cuda: lenet_ext's CUDA kernels against the GPU tools a user would pick
instead, in one process, on the same images (the method: :mod:`lenet.bench.cpu`):

* PyTorch eager on CUDA (``inference_mode``), fed the normalized float32 batch already on the GPU;
* PyTorch with CUDA graphs (the same model captured once per batch size, replayed);
* ONNX Runtime's CUDA execution provider when installed, with I/O bound to GPU memory;
* lenet_ext ``device="cuda"`` fed raw uint8 pixels on the GPU (preprocessing happens in its first
  kernel), normalized float32 on the GPU, and raw uint8 numpy (staged through pinned memory: the
  end-to-end figure a numpy user sees, host copies included).

Every figure is timed with CUDA events around each call after a warm-up; images/s = images over
the summed event time. The % FP32 column is the model's real multiply-accumulates × 2 × images/s
over the GPU's FP32 peak (SMs × FP32 lanes × 2 × clock; the measured torch.mm rate, TF32 off, when
the architecture is unknown), both printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .measure import CPU_BATCH_SIZES, Row, deployment_model, model_macs, normalize
from .table import print_table

GPU_BATCH_SIZES = [1, 256, 4096, 65536]


def no_gpu_reason() -> str | None:
    """Why the CUDA benchmark cannot run here, or None."""
    import lenet_ext

    info = lenet_ext.build_info()
    if not info.get("cuda"):
        return "this lenet_ext was built without CUDA (no nvcc at build time)"
    if info.get("cuda_devices", 0) < 1:
        why = info.get("cuda_info", {}).get("error") or "no CUDA device found"
        return f"lenet_ext sees no CUDA device ({why})"
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed (the peers and the CUDA event timer need it)"
    if not torch.cuda.is_available():
        return "PyTorch sees no CUDA device (a CPU-only torch build?)"
    return None


def time_cuda(fn: Callable[[], Any], batch: int, seconds: float, min_calls: int = 5
              ) -> tuple[float, float]:
    """(images/s, p50 seconds per call), each call bracketed by CUDA events after a warm-up."""
    import time

    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    pairs = []
    t_end = time.perf_counter() + seconds
    while len(pairs) < min_calls or time.perf_counter() < t_end:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        pairs.append((start, end))
        if len(pairs) % 64 == 0:
            end.synchronize()  # keep the queue short so the wall-clock budget means something
    torch.cuda.synchronize()
    times = [s.elapsed_time(e) / 1e3 for s, e in pairs]
    return batch * len(times) / sum(times), statistics.median(times)


def gpu_sgemm_tflops(n: int = 4096, calls: int = 20) -> float:
    """Measured FP32 matrix-multiply rate of the current GPU (TF32 disabled), TFLOP/s."""
    import torch

    allow = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        a = torch.randn(n, n, device="cuda")
        b = torch.randn(n, n, device="cuda")
        for _ in range(3):
            torch.mm(a, b)
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            torch.mm(a, b)
        end.record()
        end.synchronize()
        return 2 * n**3 * calls / (start.elapsed_time(end) / 1e3) / 1e12
    finally:
        torch.backends.cuda.matmul.allow_tf32 = allow


# FP32 lanes per SM by compute capability (CUDA programming guide, arithmetic throughput table).
FP32_LANES = {(7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 7): 128, (8, 9): 128, (9, 0): 128}


def fp32_peak_tflops(device: dict[str, Any]) -> float | None:
    """The GPU's FP32 peak (SMs x lanes x 2 x clock), from lenet_ext.build_info()'s device entry."""
    major, minor = (int(v) for v in device["compute_capability"].split("."))
    lanes = FP32_LANES.get((major, minor), 128 if major >= 10 else None)
    if not lanes or not device.get("clock_khz"):
        return None
    return device["multiprocessors"] * lanes * 2 * device["clock_khz"] * 1e3 / 1e12


def graph_call(model: Any, x: Any) -> Callable[[], Any]:
    """The model captured in a CUDA graph on the static input x; the call replays it."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(3):
            model(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        model(x)
    return graph.replay


def ort_cuda_call(artifact: Path, device: int) -> Callable[[Any], Callable[[], Any]] | None:
    """A maker of ONNX Runtime CUDA calls on GPU-resident input, or None (with the reason)."""
    try:
        import onnxruntime as ort
    except ImportError:
        print("lenet-bench: ONNX Runtime is not installed; skipping its CUDA provider", file=sys.stderr)
        return None
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print("lenet-bench: this ONNX Runtime has no CUDAExecutionProvider (install "
              "onnxruntime-gpu); skipping it", file=sys.stderr)
        return None
    try:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(artifact / "model.onnx"), so,
                                    providers=[("CUDAExecutionProvider", {"device_id": device})])
    except Exception as exc:  # noqa: BLE001 - a peer that does not load is reported, not fatal
        print(f"lenet-bench: ONNX Runtime CUDA session failed: {exc}", file=sys.stderr)
        return None
    in_name, out_name = sess.get_inputs()[0].name, sess.get_outputs()[0].name

    def make(x: Any) -> Callable[[], Any]:
        binding = sess.io_binding()
        binding.bind_input(in_name, "cuda", device, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_output(out_name, "cuda", device)
        return lambda: sess.run_with_iobinding(binding)
    return make


def run(args: argparse.Namespace) -> int:
    reason = no_gpu_reason()
    if reason:
        print(f"lenet-bench --device cuda: cannot run: {reason}. GPU figures need a machine with "
              "an NVIDIA GPU and driver; `lenet-bench ARTIFACT` benchmarks the CPU.", file=sys.stderr)
        return 2
    import torch

    import lenet_ext

    artifact = Path(args.artifact)
    sizes = args.batch_sizes
    if sizes == CPU_BATCH_SIZES:  # the default: replaced by the GPU list
        sizes = GPU_BATCH_SIZES
    engine = lenet_ext.load(artifact, device="cuda")
    spec = engine.spec
    device = torch.device("cuda", engine._core.device_index)
    torch.cuda.set_device(device)
    props = torch.cuda.get_device_properties(device)
    macs = model_macs(spec)
    sgemm = gpu_sgemm_tflops()
    devices = lenet_ext.build_info()["cuda_info"]["devices"]
    peak = fp32_peak_tflops(devices[engine._core.device_index])
    tflops, rate_from = (peak, "FP32 peak") if peak else (sgemm, "measured sgemm (peak unknown)")
    print(f"GPU: {props.name} ({props.multi_processor_count} SMs, compute capability "
          f"{props.major}.{props.minor}), lenet_ext {engine.isa}")
    print(f"FP32 peak: {f'{peak:.2f} TFLOP/s' if peak else 'unknown'}; measured FP32 matmul: "
          f"{sgemm:.2f} TFLOP/s (torch.mm 4096x4096, TF32 off); model: {spec.arch}, "
          f"{macs:,} real MACs/image")
    model = deployment_model(artifact).to(device).eval()
    make_ort = ort_cuda_call(artifact, device.index or 0)
    rng = np.random.default_rng(0)
    rows: list[Row] = []
    for n in sizes:
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        x = normalize(images, spec)
        x_gpu = torch.from_numpy(x).to(device)
        images_gpu = torch.from_numpy(images).to(device)

        def eager(x_gpu=x_gpu):
            with torch.inference_mode():
                return model(x_gpu)
        peers: list[tuple[str, str, Callable[[], Any]]] = [
            ("PyTorch eager", "CUDA, float32 on GPU", eager)]
        try:
            peers.append(("PyTorch CUDA graph", "captured per batch size", graph_call(model, x_gpu)))
        except Exception as exc:  # noqa: BLE001
            print(f"lenet-bench: CUDA graph capture failed at batch {n}: {exc}", file=sys.stderr)
        if make_ort is not None:
            peers.append(("ONNX Runtime", "CUDA provider, I/O bound", make_ort(x_gpu)))
        best: dict[str, Row] = {}
        for name, config, fn in peers:
            ips, p50 = time_cuda(fn, n, args.seconds)
            best[name] = Row(n, name, config, ips, p50 * 1e3)
        mine = []
        for label, config, data in (("lenet_ext", "cuda, uint8 on GPU", images_gpu),
                                    ("lenet_ext float32", "cuda, float32 on GPU", x_gpu),
                                    ("lenet_ext numpy", "cuda, uint8 numpy (pinned copies)", images)):
            ips, p50 = time_cuda(lambda d=data: engine.scores(d), n, args.seconds)
            mine.append(Row(n, label, config, ips, p50 * 1e3, peer=False))
        top = max(r.images_per_s for r in best.values()) if best else None
        for r in mine + sorted(best.values(), key=lambda r: -r.images_per_s):
            r.ratio_to_best_peer = r.images_per_s / top if top else None
            r.fraction_of_sgemm = 2 * macs * r.images_per_s / (tflops * 1e12)
            rows.append(r)
        del x_gpu, images_gpu, peers
        torch.cuda.empty_cache()
    print_table(rows, "% FP32")
    print(f"(% FP32: 2 x real MACs x images/s over the {rate_from}; goal: lenet_ext >= 5x the "
          "best peer at batch >= 4096)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "device": "cuda", "gpu": props.name, "multiprocessors": props.multi_processor_count,
            "compute_capability": f"{props.major}.{props.minor}", "fp32_peak_tflops": peak,
            "sgemm_tflops": sgemm, "fraction_relative_to": rate_from,
            "arch": spec.arch, "macs_per_image": macs, "rows": [asdict(r) for r in rows]}, indent=2))
    return 0
