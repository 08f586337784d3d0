"""Where the time goes, for the engine and for its best peer (a benchmark, not a test).

Engine: builds tools/stage_timings.cpp against the engine's CPU sources (the flags of
csrc/engine/sources.cmake) and runs it: nanoseconds per call of each fused stage on one thread,
for the wide path (16 images, AVX-512) and the small path (one image), plus the C++ engine call
without Python (1 and 2 threads: the shared block; one image always runs on one thread). Then the same engine through Python (``lenet_ext.load(...).scores``, p50), so
the gap between the C++ call and the Python call is the binding's share.

Peer: ONNX Runtime on the shipped ``model.onnx`` with its profiler on: microseconds per node
(median over calls) at each batch size, on 1 and on 2 intra-op threads.

    python tools/stage_timings.py ARTIFACT_DIR [--batch-sizes 1,16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {  # source -> extra flags (csrc/engine/sources.cmake)
    "csrc/engine/model.cpp": [], "csrc/engine/cpu/isa.cpp": [],
    "csrc/engine/cpu/thread_pool.cpp": [], "csrc/engine/cpu/cpu_engine.cpp": [],
    "csrc/engine/cpu/kernels_baseline.cpp": [],
    "csrc/engine/cpu/kernels_avx2.cpp": ["-mavx2", "-mfma"],
    "csrc/engine/cpu/kernels_avx512.cpp": ["-mavx512f", "-mfma"],
    "tools/stage_timings.cpp": ["-mavx512f", "-mfma"],
}
FLAGS = ["-O3", "-DNDEBUG", "-std=c++20", "-ffp-contract=fast", "-DLENET_HAVE_AVX2=1", "-DLENET_HAVE_AVX512=1",
         f"-I{ROOT / 'csrc'}"]


def engine_stages(build: Path) -> dict:
    objects = []
    for src, extra in SOURCES.items():
        obj = build / (Path(src).stem + ".o")
        subprocess.run(["g++", *FLAGS, *extra, "-c", str(ROOT / src), "-o", str(obj)], check=True)
        objects.append(str(obj))
    exe = build / "stage_timings"
    subprocess.run(["g++", *objects, "-o", str(exe), "-pthread"], check=True)
    return json.loads(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout)


def p50_us(fn, calls: int = 2000) -> float:
    for _ in range(50):
        fn()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def ort_nodes(model: Path, x: np.ndarray, threads: int, calls: int = 300) -> tuple[dict[str, float], float]:
    """Microseconds per call by op type (each node's median over calls, summed by op type) and
    the median whole run, on `threads` intra-op threads (spinning, ONNX Runtime's default)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.enable_profiling = True
    so.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    for _ in range(calls):
        sess.run(None, {"input": x})
    events = json.loads(Path(sess.end_profiling()).read_text())
    per_node: dict[tuple[str, str], list[float]] = defaultdict(list)
    runs = []
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node[(e["args"]["op_name"], e["name"])].append(e["dur"])
        elif e.get("cat") == "Session" and e["name"] == "model_run":
            runs.append(e["dur"])
    per_op: dict[str, float] = defaultdict(float)
    for (op, _), durations in per_node.items():
        per_op[op] += statistics.median(durations)
    return dict(per_op), statistics.median(runs) if runs else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--batch-sizes", default="1,16")
    args = ap.parse_args()
    sizes = [int(v) for v in args.batch_sizes.split(",")]

    with tempfile.TemporaryDirectory() as build:
        stages = engine_stages(Path(build))
    print(f"engine stages, 1 thread, ns per call (best of 7 rounds): {json.dumps(stages)}")
    wide, small = stages["wide"], stages["small"]
    print("wide path, 16 images: " + ", ".join(
        f"{k} {v / 1e3:.1f} us ({100 * v / wide['total']:.0f} %)" for k, v in wide.items() if k != "total")
        + f"; total {wide['total'] / 1e3:.1f} us = {16e9 / wide['total']:,.0f} images/s/core")
    print(f"engine call, 16 images: {stages['engine_call_16'] / 1e3:.1f} us on 1 thread, "
          f"{stages['engine_call_16_2_threads'] / 1e3:.1f} us on 2 threads (one block shared; "
          f"shared calls that backed off: {stages['share_trips_2_threads']})")
    print(f"engine call, 1 image: {stages['engine_call_1'] / 1e3:.2f} us (one thread, whatever the pool)")
    print("small path, 1 image: " + ", ".join(
        f"{k} {v / 1e3:.2f} us" for k, v in small.items() if k != "total")
        + f"; total {small['total'] / 1e3:.2f} us")

    import lenet_ext

    engine = lenet_ext.load(args.artifact)
    spec = engine.spec
    for n in sizes:
        images = np.random.default_rng(n).integers(0, 256, (n, 28, 28), dtype=np.uint8)
        py = p50_us(lambda: engine.scores(images))
        # The C++ call at the same thread count (the C++ tool times 1 and 2).
        key = {1: "engine_call_1", 2: "engine_call_1_2_threads"}.get(engine.threads) if n == 1 else None
        cpp = stages[key] if key else None
        note = f" (C++ call {cpp / 1e3:.2f} us: Python and binding {py - cpp / 1e3:.2f} us)" if cpp else ""
        print(f"lenet_ext batch {n}: p50 {py:.2f} us through Python, {engine.threads} threads{note}")
        sys.path.insert(0, str(ROOT / "python"))
        from lenet.bench.measure import normalize

        x = normalize(images, spec)
        for threads in (1, 2):
            per_op, run = ort_nodes(args.artifact / "model.onnx", x, threads)
            total = sum(per_op.values())
            print(f"ONNX Runtime batch {n}, {threads} thread{'s' * (threads > 1)}: median run {run:.1f} us; "
                  "median kernel time by op: "
                  + ", ".join(f"{op} {us:.1f} us ({100 * us / total:.0f} %)"
                              for op, us in sorted(per_op.items(), key=lambda kv: -kv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
