"""Load and faults against lenet-serve, measured: what many small clients get from dynamic
batching, what big batches get compared with the engine in-process, and what the server does
when clients misbehave or the load is ten times too much.

    python tools/serve_load.py                        # lenet5-mnist, 30 s phases, 3 runs
    python tools/serve_load.py --seconds 10 --runs 1 --json results/serve_load.json

It starts ``lenet-serve MODEL --ceiling-route`` itself (on a free port of 127.0.0.1), and runs:

* ``small``: 64 clients, each sending one image at a time (binary tensor data, keep-alive), for
  --seconds, to ``/v2/models/M/infer`` and to ``/bench/models/M/infer`` (the server's ceiling:
  the same request handling without inference); requests/s, p50/p99 latency, errors, and the
  batches the server formed (from its /metrics);
* ``large``: 8 clients sending 256 images per request, images/s against the engine's own
  images/s at batch 256 in this process (same model, same threads, same input): once with
  normalized FP32 tensors [256,1,S,S] (1 MiB for lenet5), once with raw UINT8 pixels
  [256,28,28] (196 KiB), which the engine normalizes itself;
* faults, while 64 well-behaved clients keep sending: clients killed mid-request (half a body,
  then a reset), clients that send half a body and stall, then 10x the clients (640) for 10 s:
  the well-behaved clients must keep being answered, the server's memory (VmRSS) must stay
  bounded and the excess be answered 503; finally SIGTERM under load: every request the server
  accepted must be answered and the server exit 0.

Clients are raw asyncio HTTP/1.1 connections in --client-procs processes (the same client for
the ceiling and for inference, so the ratio measures the server); the CPU time the clients and
the server use is reported with each phase. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lenet.bench.measure import cpu_name

HOST = "127.0.0.1"


# --- requests --------------------------------------------------------------------------------

def tensor(datatype: str, images: int, size: int, seed: int = 0) -> np.ndarray:
    """What a client sends: normalized FP32 [N,1,S,S], or UINT8 raw 28x28 pixels [N,28,28] (the
    engine pads and normalizes them itself)."""
    rng = np.random.default_rng(seed)
    if datatype == "UINT8":
        return rng.integers(0, 256, size=(images, 28, 28), dtype=np.uint8)
    return rng.normal(size=(images, 1, size, size)).astype("<f4")


def infer_request(path: str, images: int, size: int, seed: int = 0, datatype: str = "FP32") -> bytes:
    """A complete HTTP request as tritonclient sends it: JSON header + the tensor's bytes."""
    array = tensor(datatype, images, size, seed)
    x = array.tobytes()
    header = json.dumps({"inputs": [{"name": "input", "shape": list(array.shape), "datatype": datatype,
                                     "parameters": {"binary_data_size": len(x)}}],
                         "parameters": {"binary_data_output": True}}).encode()
    body = header + x
    return (f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/octet-stream\r\n"
            f"Inference-Header-Content-Length: {len(header)}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep-alive) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection", "").lower() != "close"


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)   # of answered 200s
    statuses: dict[int, int] = field(default_factory=dict)
    refused: int = 0          # connections the server did not accept (not listening)
    dropped: int = 0          # requests written whose connection ended without an answer
    cpu_s: float = 0.0        # CPU time the client processes used (user + system)

    def merge(self, other: "Tally") -> None:
        self.latencies += other.latencies
        for k, v in other.statuses.items():
            self.statuses[k] = self.statuses.get(k, 0) + v
        self.refused += other.refused
        self.dropped += other.dropped
        self.cpu_s += other.cpu_s


async def client(port: int, request: bytes, stop_at: float, tally: Tally) -> None:
    reader = writer = None
    while time.perf_counter() < stop_at:
        if writer is None:
            try:
                reader, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                tally.refused += 1
                await asyncio.sleep(0.05)
                continue
        try:
            start = time.perf_counter()
            writer.write(request)
            status, _, keep = await read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            tally.dropped += 1
            writer.close()
            writer = None
            continue
        tally.statuses[status] = tally.statuses.get(status, 0) + 1
        if status == 200:
            tally.latencies.append(time.perf_counter() - start)
        elif status == 503:
            await asyncio.sleep(0.05)  # what Retry-After asks, scaled to a benchmark
        if not keep:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


def run_clients(port: int, request: bytes, clients: int, seconds: float) -> Tally:
    async def main() -> Tally:
        tally = Tally()
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(*(client(port, request, stop_at, tally) for _ in range(clients)))
        return tally

    before = cpu_seconds()
    tally = asyncio.run(main())
    tally.cpu_s = cpu_seconds() - before
    return tally


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of this process, or of process ``pid`` (from /proc)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def load(port: int, request: bytes, clients: int, seconds: float, procs: int) -> Tally:
    """``clients`` connections spread over ``procs`` processes, for ``seconds``."""
    ctx = multiprocessing.get_context("fork")
    shares = [clients // procs + (i < clients % procs) for i in range(procs)]
    with ctx.Pool(procs) as pool:
        parts = pool.starmap(run_clients, [(port, request, n, seconds) for n in shares if n])
    total = Tally()
    for part in parts:
        total.merge(part)
    return total


def summary(tally: Tally, seconds: float, images: int) -> dict:
    lat = np.array(tally.latencies) * 1000
    ok = len(tally.latencies)
    return {"requests_per_s": ok / seconds, "images_per_s": ok * images / seconds,
            "client_cpus": tally.cpu_s / seconds,
            "p50_ms": float(np.percentile(lat, 50)) if ok else None,
            "p99_ms": float(np.percentile(lat, 99)) if ok else None,
            "ok": ok, "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
            "refused_connections": tally.refused, "dropped_requests": tally.dropped}


# --- the server --------------------------------------------------------------------------------

def autogroup_nice(pid: int | str = "self", nice: int | None = None) -> int | None:
    """The nice value of process ``pid``'s autogroup, after setting it to ``nice`` if given; None
    where the kernel has no autogroups. With autogroups (Linux's default for desktop and many
    server kernels) the scheduler first shares the cores between sessions, each session's group
    weighing as much as a nice-0 process, whatever the nice value or idle policy of the
    threads inside: another session's SCHED_IDLE job still takes up to half of a 2-core machine.
    The server runs in a session of its own (so a signal to it reaches nothing else)."""
    path = Path(f"/proc/{pid}/autogroup")
    try:
        if nice is not None:
            path.write_text(str(nice))
        return int(path.read_text().split("nice")[1])
    except (OSError, IndexError, ValueError):
        return None


class Server:
    def __init__(self, model: str, extra: list[str], nice: int | None = None) -> None:
        """``nice``: the server's autogroup nice (--autogroup-nice), None to leave it."""
        exe = Path(sys.executable).with_name("lenet-serve")
        self.proc = subprocess.Popen([str(exe), model, "--port", "0", "--ceiling-route", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        line = self.proc.stdout.readline()
        m = re.search(r"http://[\d.]+:(\d+)", line)
        if not m:
            raise SystemExit(f"lenet-serve did not start: {line}{self.proc.stderr.read()}")
        self.port = int(m.group(1))
        if nice is not None and autogroup_nice(self.proc.pid, nice) != nice:
            raise SystemExit(f"cannot set the server's autogroup nice to {nice}")

    def rss_mb(self) -> float:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024

    def metrics(self) -> str:
        with socket.create_connection((HOST, self.port)) as s:
            s.sendall(f"GET /metrics HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.decode()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def batch_histogram(metrics_text: str, model: str) -> tuple[float, float, dict[str, float]]:
    """(engine calls, images, cumulative calls per bucket) of lenet_batch_size_images."""
    def value(name: str) -> float:
        m = re.search(rf'^{name}{{model="{re.escape(model)}"}} (\S+)$', metrics_text, re.M)
        return float(m.group(1)) if m else 0.0

    buckets = {le: float(v) for le, v in re.findall(
        rf'^lenet_batch_size_images_bucket{{le="([^"]+)",model="{re.escape(model)}"}} (\S+)$', metrics_text, re.M)}
    return value("lenet_batch_size_images_count"), value("lenet_batch_size_images_sum"), buckets


def batches_formed(before: str, after: str, model: str) -> dict:
    c0, s0, b0 = batch_histogram(before, model)
    c1, s1, b1 = batch_histogram(after, model)
    calls = c1 - c0
    cumulative = {le: b1[le] - b0.get(le, 0.0) for le in b1}
    # The median call's bucket: the first upper bound holding half the calls.
    median = next((le for le, n in cumulative.items() if calls and n >= calls / 2), None)
    return {"engine_calls": calls, "mean_images_per_call": (s1 - s0) / calls if calls else None,
            "median_call_at_most": median}


def engine_images_per_s(model: str, batch: int, seconds: float, threads: int | None,
                        datatype: str = "FP32") -> float:
    """The engine in this process: images/s at ``batch`` over ``seconds`` (all calls, as the
    HTTP phases count all requests: a shared machine's quiet moments are not picked out), on the
    same kind of input the clients send (FP32 [N,1,S,S] or UINT8 [N,28,28])."""
    import lenet_ext

    engine = lenet_ext.load(model, threads=threads)
    x = tensor(datatype, batch, engine.spec.input_size)
    engine.scores(x)
    calls = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        engine.scores(x)
        calls += 1
    return calls * batch / (time.perf_counter() - start)


# --- faults ------------------------------------------------------------------------------------

def killed_mid_request(port: int, request: bytes, count: int) -> None:
    """Clients that send half a request and vanish (a reset, as a killed process leaves)."""
    for _ in range(count):
        s = socket.create_connection((HOST, port))
        s.sendall(request[: len(request) // 2])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
        time.sleep(0.02)


def half_body(port: int, request: bytes, count: int, hold_s: float) -> list[int | None]:
    """Clients that send half the body and stall: the status each gets (None: none came)."""
    sockets = []
    for _ in range(count):
        s = socket.create_connection((HOST, port))
        s.sendall(request[: len(request) // 2])
        s.settimeout(hold_s)
        sockets.append(s)
    answers = []
    for s in sockets:
        try:
            head = s.recv(256).decode("latin-1")
            answers.append(int(head.split()[1]) if head else None)
        except (OSError, IndexError, ValueError):
            answers.append(None)
        s.close()
    return answers


def sample_rss(server: Server, stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        try:
            out.append(server.rss_mb())
        except (OSError, AttributeError):
            return
        stop.wait(0.2)


def faults(args, size: int) -> dict:
    server = Server(args.model, ["--body-timeout-s", "5"], args.autogroup_nice)
    small = infer_request(f"/v2/models/{args.model}/infer", 1, size)
    result: dict = {}
    try:
        load(server.port, small, 8, 1.0, 1)  # warm
        rss: list[float] = []
        stop = threading.Event()
        threading.Thread(target=sample_rss, args=(server, stop, rss), daemon=True).start()

        # 1. killed clients and half bodies, while 64 good clients send for 15 s
        background = {}
        worker = threading.Thread(target=lambda: background.update(
            tally=load(server.port, small, 64, 15.0, args.client_procs)))
        worker.start()
        time.sleep(1.0)
        big = infer_request(f"/v2/models/{args.model}/infer", 256, size)
        killed_mid_request(server.port, big, 50)
        stalled = half_body(server.port, big, 20, hold_s=10.0)
        worker.join()
        result["misbehaving_clients"] = {
            "killed_mid_request": 50, "half_body_stalled": len(stalled),
            "half_body_answers": {str(k): stalled.count(k) for k in sorted(set(stalled), key=str)},
            "good_clients": summary(background["tally"], 15.0, 1)}

        # 2. ten times the clients for 10 s
        rss_before = max(rss[-5:])
        flood = load(server.port, small, 640, 10.0, args.client_procs)
        result["ten_times_load"] = {"clients": 640, **summary(flood, 10.0, 1),
                                    "rss_mb_before": rss_before, "rss_mb_peak": max(rss)}
        # the server still answers afterwards
        after = load(server.port, small, 4, 2.0, 1)
        result["after_flood"] = summary(after, 2.0, 1)
        stop.set()

        # 3. SIGTERM under load: what was accepted is answered, then a clean exit
        holder = {}
        worker = threading.Thread(target=lambda: holder.update(
            tally=load(server.port, small, 64, 4.0, args.client_procs)))
        worker.start()
        time.sleep(2.0)
        start = time.perf_counter()
        code = server.stop()
        seconds = time.perf_counter() - start
        worker.join()
        result["sigterm_under_load"] = {"exit_code": code, "seconds_to_exit": seconds,
                                        "server_said": server.proc.stdout.read().strip().splitlines()[-1:],
                                        **summary(holder["tally"], 4.0, 1)}
    finally:
        server.stop()
    return result


# --- the runs ----------------------------------------------------------------------------------

# (phase, images per request, datatype); the clients per phase come from the arguments.
PHASES = (("small", 1, "FP32"), ("large", 256, "FP32"), ("large_uint8", 256, "UINT8"))


def one_run(args, size: int) -> dict:
    server = Server(args.model, [], args.autogroup_nice)
    out: dict = {}
    try:
        load(server.port, infer_request(f"/v2/models/{args.model}/infer", 1, size), 8, 1.0, 1)  # warm
        # Each phase: the server's ceiling (no inference, same payload), then inference.
        for name, per_request, datatype in PHASES:
            clients = args.clients if per_request == 1 else args.large_clients
            for route, key in (("bench", f"{name}_ceiling"), ("v2", f"{name}_infer")):
                request = infer_request(f"/{route}/models/{args.model}/infer", per_request, size,
                                        datatype=datatype)
                before, cpu = server.metrics(), cpu_seconds(server.proc.pid)
                out[key] = summary(load(server.port, request, clients, args.seconds, args.client_procs),
                                   args.seconds, per_request)
                out[key]["server_cpus"] = (cpu_seconds(server.proc.pid) - cpu) / args.seconds
            out[f"{name}_infer"]["batches"] = batches_formed(before, server.metrics(), args.model)
    finally:
        out["server_exit_code"] = server.stop()
    # The engine alone, with the server gone: the same cores to itself, the same input.
    out["engine_in_process_images_per_s"] = engine_images_per_s(args.model, 256, args.seconds, None)
    out["engine_in_process_uint8_images_per_s"] = engine_images_per_s(args.model, 256, args.seconds,
                                                                      None, "UINT8")
    return out


def median_and_worst(runs: list[dict], key: str, field_: str, worst=min) -> tuple[float, float]:
    values = [r[key][field_] for r in runs]
    return statistics.median(values), worst(values)


def report(runs: list[dict], fault: dict | None) -> str:
    lines = [f"{len(runs)} run(s); median (worst)"]

    def row(label: str, key: str, field_: str, unit: str, worst=min) -> None:
        med, bad = median_and_worst(runs, key, field_, worst)
        lines.append(f"  {label:44s} {med:12,.1f} ({bad:,.1f}) {unit}")

    row("64 clients x 1 image: ceiling (no inference)", "small_ceiling", "requests_per_s", "req/s")
    row("64 clients x 1 image: inference", "small_infer", "requests_per_s", "req/s")
    ratios = [r["small_infer"]["requests_per_s"] / r["small_ceiling"]["requests_per_s"] for r in runs]
    lines.append(f"  {'  share of the ceiling':44s} {statistics.median(ratios):12.1%} ({min(ratios):.1%})")
    row("  p50 latency", "small_infer", "p50_ms", "ms", max)
    row("  p99 latency", "small_infer", "p99_ms", "ms", max)
    means = [r["small_infer"]["batches"]["mean_images_per_call"] for r in runs]
    lines.append(f"  {'  images per engine call (mean)':44s} {statistics.median(means):12.1f} ({min(means):.1f})")
    lines.append(f"  {'  errors (non-200 answers, dropped requests)':44s} "
                 f"{max(sum(v for k, v in r['small_infer']['statuses'].items() if k != '200') + r['small_infer']['dropped_requests'] for r in runs):12d}")
    for phase, label, engine_key in (("large", "FP32", "engine_in_process_images_per_s"),
                                     ("large_uint8", "UINT8 28x28", "engine_in_process_uint8_images_per_s")):
        lines.append(f"8 clients x 256 images, {label}:")
        row("  ceiling (no inference)", f"{phase}_ceiling", "images_per_s", "images/s")
        row("  inference", f"{phase}_infer", "images_per_s", "images/s")
        engine = [r[engine_key] for r in runs]
        lines.append(f"  {'  engine in-process, batch 256, same input':44s} "
                     f"{statistics.median(engine):12,.1f} ({min(engine):,.1f}) images/s")
        shares = [r[f"{phase}_infer"]["images_per_s"] / r[engine_key] for r in runs]
        lines.append(f"  {'  share of the engine in-process':44s} {statistics.median(shares):12.1%} ({min(shares):.1%})")
        ceiling = [r[f"{phase}_ceiling"]["images_per_s"] / r[engine_key] for r in runs]
        lines.append(f"  {'  ceiling as a share of the engine':44s} {statistics.median(ceiling):12.1%} ({min(ceiling):.1%})")
    lines.append("CPUs busy during inference (median; 2 = both cores of a 2-core machine):")
    for phase, _, _ in PHASES:
        server_cpus = statistics.median(r[f"{phase}_infer"]["server_cpus"] for r in runs)
        client_cpus = statistics.median(r[f"{phase}_infer"]["client_cpus"] for r in runs)
        lines.append(f"  {phase + ': server (engine included) / clients':44s} {server_cpus:12.2f} / {client_cpus:.2f}")
    if fault:
        lines.append("faults: " + json.dumps(fault, indent=1))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="lenet5-mnist", help="ARTIFACT for lenet-serve (default %(default)s)")
    p.add_argument("--seconds", type=float, default=30.0, help="each load phase (default %(default)s)")
    p.add_argument("--runs", type=int, default=3, help="repetitions; median and worst reported (default %(default)s)")
    p.add_argument("--clients", type=int, default=64, help="clients sending 1 image (default %(default)s)")
    p.add_argument("--large-clients", type=int, default=8, help="clients sending 256 images (default %(default)s)")
    p.add_argument("--client-procs", type=int, default=2, help="processes the clients run in (default %(default)s)")
    p.add_argument("--no-faults", action="store_true", help="skip the fault checks")
    p.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    p.add_argument("--autogroup-nice", type=int, metavar="N",
                   help="set the autogroup nice of this session (clients, the engine in-process) and "
                        "of each server to N for the run (Linux autogroups; below 0 needs root): "
                        "other sessions' work, idle-class jobs included, then keeps off the cores")
    args = p.parse_args(argv)
    import lenet_ext

    size = lenet_ext.load(args.model).spec.input_size
    previous_nice = autogroup_nice()
    if args.autogroup_nice is not None:
        if autogroup_nice(nice=args.autogroup_nice) != args.autogroup_nice:
            raise SystemExit(f"cannot set the autogroup nice to {args.autogroup_nice} (no autogroups, "
                             "or not allowed)")
    try:
        return measure(args, size)
    finally:
        if args.autogroup_nice is not None:
            autogroup_nice(nice=previous_nice)


def measure(args, size: int) -> int:
    runs = []
    for i in range(args.runs):
        runs.append(one_run(args, size))
        print(f"run {i + 1}/{args.runs}: {json.dumps(runs[-1])}", file=sys.stderr, flush=True)
    fault = None if args.no_faults else faults(args, size)
    print(f"machine: {os.cpu_count()} CPUs ({cpu_name()}); model {args.model}; "
          f"{args.seconds:g} s per phase; autogroup nice {autogroup_nice()}")
    if runs:
        print(report(runs, fault))
    elif fault:
        print("faults: " + json.dumps(fault, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": runs, "faults": fault}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
