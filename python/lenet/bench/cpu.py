"""lenet-bench on the CPU: lenet_ext against the tools a user would pick instead, each running
the files ``lenet-export`` ships (the plain graph, :mod:`lenet.plain`) in its best configuration
(this docstring is the method; docs/benchmarks.md has runs).

One process, one run, the same images for everyone, the same thread budget:

* lenet_ext, fed the same normalized float32 batch as every peer (the headline row), and raw
  uint8 pixels (its first kernel applies the preprocessing contract; an extra row, not compared
  like with like);
* PyTorch eager on the plain deployment module (``inference_mode``), TorchScript (the shipped
  file, frozen + ``optimize_for_inference``), ONNX Runtime on the shipped ``model.onnx`` (intra-op
  threads 1 or N × spinning on/off), OpenCV DNN on the same file (1 or N threads); the best
  configuration of each is kept. All are fed the normalized float32 batch, so preprocessing is
  free for them. The ONNX rows name the graph's node count.
* INT8, when the artifact was exported with ``--precision int8``: lenet_ext's INT8 engine and
  ONNX Runtime on ``model.int8.onnx`` (the same quantized math as a QDQ graph; best of 1/N
  threads, spinning on/off), both fed the float32 batch; the INT8 rows' ratio is to that peer,
  and a line per batch gives INT8 ÷ the FP32 engine.
* A reference row, not a peer: ONNX Runtime on the graph it saved after its own optimizations
  (``optimized_model_filepath``: fused Conv+activation and the like), when that is faster still.

For each batch size it prints images/s, p50 and p99 latency of one call, the ratio to the best peer and
the fraction of this machine's FP32 matrix-multiply rate (measured here with an sgemm) that the
model's *real* multiply-accumulates reach (LeCun's C3 table is cheaper than a dense conv).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from ..artifacts import INT8_FILE
from ..spec import ArchSpec
from .measure import Row, cpu_name, deployment_model, model_macs, normalize, sgemm_gflops, time_calls
from .table import print_table

# (engine, config, make(x) -> call): each peer configuration, bound to an input batch when timed.
Peer = tuple[str, str, Callable]
REFERENCE = "ORT optimized ref"


def onnx_nodes(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path), load_external_data=False).graph.node)


def torch_peers(artifact: Path, spec: ArchSpec, threads: int) -> list[Peer]:
    import torch

    out: list[Peer] = []
    model = deployment_model(artifact)

    # torch's intra-op threads are a global setting: each config sets its own when its call is
    # made (right before it is timed); 1 thread often wins for small batches or a busy machine.
    def bind(module, n_threads):
        def make(x):
            t = torch.from_numpy(x)
            torch.set_num_threads(n_threads)

            def call():
                with torch.inference_mode():
                    return module(t)
            return call
        return make

    for n_threads in sorted({1, threads}):
        out.append(("PyTorch eager", f"plain module, {n_threads} threads", bind(model, n_threads)))
    with warnings.catch_warnings():
        # torch marks TorchScript deprecated; users still ship it, so it stays a peer, quietly.
        warnings.simplefilter("ignore", FutureWarning)
        ts_path = artifact / "model.torchscript.pt"
        if ts_path.is_file():  # our own file, hash-checked by lenet_ext.load before this runs
            ts, how = torch.jit.load(str(ts_path), map_location="cpu").eval(), "shipped"
        else:
            ts = torch.jit.trace(model, torch.zeros(1, 1, spec.input_size, spec.input_size))
            how = "traced"
        ts = torch.jit.optimize_for_inference(torch.jit.freeze(ts.eval()))
    for n_threads in sorted({1, threads}):
        out.append(("TorchScript", f"{how}, frozen+opt, {n_threads} thr", bind(ts, n_threads)))
    return out


def ort_session(model_path: Path, intra: int, spin: int, save_to: Path | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = intra
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", str(spin))
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if save_to is not None:
        so.optimized_model_filepath = str(save_to)
        so.log_severity_level = 3  # its "hardware-specific graph" notice: that is the point here
    return ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])


def ort_peers(model_path: Path, threads: int, engine: str = "ONNX Runtime") -> list[Peer]:
    nodes = onnx_nodes(model_path)
    out: list[Peer] = []
    for intra in sorted({1, threads}):
        for spin in (0, 1):
            sess = ort_session(model_path, intra, spin)
            name = sess.get_inputs()[0].name

            def make(x, sess=sess, name=name):
                return lambda: sess.run(None, {name: x})
            out.append((engine, f"{nodes} nodes, intra={intra} spin={spin}", make))
    return out


def opencv_peers(model_path: Path, spec: ArchSpec, threads: int) -> list[Peer]:
    import cv2

    net = cv2.dnn.readNetFromONNX(str(model_path))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)  # the CPU target is the default
    net.setInput(np.zeros((1, 1, spec.input_size, spec.input_size), np.float32))
    net.forward()
    nodes = onnx_nodes(model_path)

    def bind(n_threads):
        def make(x):
            cv2.setNumThreads(n_threads)

            def call():
                net.setInput(x)
                return net.forward()
            return call
        return make
    return [("OpenCV DNN", f"{nodes} nodes, {n} threads", bind(n)) for n in sorted({1, threads})]


def peers(artifact: Path, spec: ArchSpec, threads: int, scratch: Path
          ) -> tuple[list[Peer], list[Peer]]:
    """(peers, reference rows) that load here; a peer that does not load is reported, not fatal."""
    out = torch_peers(artifact, spec, threads)
    refs: list[Peer] = []
    onnx_path = artifact / "model.onnx"
    try:
        out += ort_peers(onnx_path, threads)
        saved = scratch / "ort-optimized.onnx"
        ort_session(onnx_path, 1, 0, save_to=saved)  # writes ORT's optimized graph
        refs += ort_peers(saved, threads, REFERENCE)
    except Exception as exc:  # noqa: BLE001
        print(f"lenet-bench: ONNX Runtime unavailable: {str(exc).splitlines()[0][:200]}",
              file=sys.stderr)
    try:
        out += opencv_peers(onnx_path, spec, threads)
    except Exception as exc:  # noqa: BLE001
        print(f"lenet-bench: OpenCV DNN cannot run this model: {str(exc).splitlines()[0][:200]}",
              file=sys.stderr)
    return out, refs


def best_of(configs: list[Peer], x: np.ndarray, n: int, seconds: float, **row) -> dict[str, Row]:
    """The fastest configuration of each engine on batch ``x``."""
    best: dict[str, Row] = {}
    for name, config, make in configs:
        ips, p50, p99 = time_calls(make(x), n, seconds)
        if name not in best or ips > best[name].images_per_s:
            best[name] = Row(n, name, config, ips, p50 * 1e3, p99_ms=p99 * 1e3, **row)
    return best


def int8_setup(artifact: Path, threads: int):
    """(INT8 engine, its ONNX Runtime peers, the export's accuracy report), or Nones with a note
    when the artifact was not exported with --precision int8."""
    import lenet_ext

    if not (artifact / INT8_FILE).is_file():
        print(f"lenet-bench: no {INT8_FILE} in {artifact} (lenet-export --precision int8 writes it): "
              "no INT8 rows", file=sys.stderr)
        return None, [], None
    try:
        engine = lenet_ext.load(artifact, threads=threads, precision="int8")
    except ValueError as exc:
        print(f"lenet-bench: INT8 engine unavailable: {exc}", file=sys.stderr)
        return None, [], None
    manifest = json.loads((artifact / "manifest.json").read_text())
    accuracy = ((manifest.get("int8") or {}).get("parity") or {}).get("accuracy")
    return engine, ort_peers(artifact / INT8_FILE, threads, "ORT int8 QDQ"), accuracy


def run(args: argparse.Namespace) -> list[Row]:
    import torch

    import lenet_ext

    artifact = Path(args.artifact)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    engine = lenet_ext.load(artifact, threads=threads)
    spec = engine.spec
    macs = model_macs(spec)
    # The matmul rate is sampled before every batch size and the best sample kept, like the
    # engines' best rounds: a sample taken while another process held a core would flatter us.
    sgemm_seconds = min(1.0, 2 * args.seconds)
    sgemm = [sgemm_gflops(threads, sgemm_seconds)]
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs, lenet_ext ISA {engine.isa}, "
          f"threads {threads}")
    int8, int8_peers, int8_accuracy = int8_setup(artifact, threads)
    int8_lines: list[str] = []
    rng = np.random.default_rng(0)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="lenet-bench-") as scratch:
        peer_list, ref_list = peers(artifact, spec, threads, Path(scratch))
        for n in args.batch_sizes:
            sgemm.append(sgemm_gflops(threads, sgemm_seconds / 2))
            images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            x = normalize(images, spec)
            best = best_of(peer_list, x, n, args.seconds)
            top = max(r.images_per_s for r in best.values()) if best else None
            refs = [r for r in best_of(ref_list, x, n, args.seconds, reference=True).values()
                    if top is None or r.images_per_s > best.get("ONNX Runtime", r).images_per_s]
            mine = []
            # The headline row gets what the peers get (float32); uint8 pixels are an extra row.
            for label, data in (("lenet_ext", x), ("lenet_ext uint8", images)):
                ips, p50, p99 = time_calls(lambda d=data: engine.scores(d), n, args.seconds)
                mine.append(Row(n, label, f"{engine.isa}, {engine.threads} threads, "
                                + ("uint8 in" if data is images else "float32 in"),
                                ips, p50 * 1e3, peer=False, p99_ms=p99 * 1e3))
            for r in mine + sorted(best.values(), key=lambda r: -r.images_per_s) + refs:
                r.ratio_to_best_peer = r.images_per_s / top if top else None
                rows.append(r)
            if int8 is not None:
                ips, p50, p99 = time_calls(lambda: int8.scores(x), n, args.seconds)
                row = Row(n, "lenet_ext int8", f"{int8.isa}, {int8.threads} threads, float32 in",
                          ips, p50 * 1e3, peer=False, p99_ms=p99 * 1e3, int8=True)
                qdq = list(best_of(int8_peers, x, n, args.seconds, int8=True).values())
                int8_top = max((r.images_per_s for r in qdq), default=None)
                for r in [row] + qdq:
                    r.ratio_to_best_peer = r.images_per_s / int8_top if int8_top else None
                    rows.append(r)
                int8_lines.append(f"batch {n}: INT8 engine {row.images_per_s / mine[0].images_per_s:.2f}x "
                                  f"the FP32 engine (both float32 in)"
                                  + (f", {row.images_per_s / int8_top:.2f}x ONNX Runtime on the QDQ model"
                                     if int8_top else ""))
    sgemm.append(sgemm_gflops(threads, sgemm_seconds / 2))
    gflops, how = max(sgemm)
    for r in rows:
        r.fraction_of_sgemm = 2 * macs * r.images_per_s / (gflops * 1e9)
    print(f"FP32 matmul rate: {gflops:.1f} GFLOP/s (best of {len(sgemm)} samples, {how}); "
          f"model: {spec.arch}, {macs:,} real MACs/image "
          f"({2 * macs * 1e-6:.3f} MFLOP; % sgemm = 2*MACs*images/s / matmul rate)")
    print_table(rows)
    for line in int8_lines:
        print(line)
    if int8_accuracy:
        print("MNIST test accuracy (lenet-export --precision int8's parity check): "
              + ", ".join(f"{k} {100 * v:.2f}%" for k, v in int8_accuracy.items()))
    if any(r.reference for r in rows):
        print(f"({REFERENCE}: ONNX Runtime on the graph it saved after its own optimizations; "
              "a reference, not a peer: 'vs best peer' is relative to the shipped files' best)")
    if args.json:
        from ..paths import write_output

        write_output(args.json, json.dumps({
            "machine": cpu_name(), "logical_cpus": os.cpu_count(), "threads": threads,
            "isa": engine.isa, "sgemm_gflops": gflops, "sgemm": how, "arch": spec.arch,
            "macs_per_image": macs, "int8_accuracy": int8_accuracy,
            "rows": [asdict(r) for r in rows]}, indent=2), "--json")
    return rows
