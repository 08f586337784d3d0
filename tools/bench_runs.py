"""Run lenet-bench several times and report the spread: per batch size, the median and the worst
run of each ratio the issue targets (FP32 engine ÷ best peer, INT8 ÷ FP32 engine, INT8 ÷ ONNX
Runtime on the QDQ model), and batch-1 p50/p99 latency of every runtime (median and worst).

    python tools/bench_runs.py artifacts/int8 --runs 5 --out results/bench-runs
    python tools/bench_runs.py artifacts/int8 --summarize results/bench-runs   # the JSONs again

Each run is a separate lenet-bench process (its JSON is kept in --out); the summary is Markdown.
Two rates per ratio: lenet-bench's images/s (its best timing round) and batch / p50 call time
(the median call: on a machine other work shares, one descheduled call spoils a whole round).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path


def run_once(artifact: str, out: Path, seconds: float, extra: list[str]) -> dict:
    subprocess.run([sys.executable, "-m", "lenet.bench", artifact, "--seconds", str(seconds),
                    "--json", str(out), *extra], check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def ratios(report: dict, rate) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for batch in sorted({r["batch"] for r in report["rows"]}):
        rows = [r for r in report["rows"] if r["batch"] == batch]
        fp32 = next(r for r in rows if r["engine"] == "lenet_ext")
        peers = [r for r in rows if r["peer"] and not r["reference"] and not r["int8"]]
        d = {"fp32 ÷ best peer": rate(fp32) / max(rate(p) for p in peers)}
        int8 = next((r for r in rows if r["engine"] == "lenet_ext int8"), None)
        qdq = [r for r in rows if r["int8"] and r["peer"]]
        if int8:
            d["int8 ÷ fp32 engine"] = rate(int8) / rate(fp32)
            if qdq:
                d["int8 ÷ ORT QDQ"] = rate(int8) / max(rate(p) for p in qdq)
        out[batch] = d
    return out


RATES = {"images/s (best round)": lambda r: r["images_per_s"],
         "batch / p50 call": lambda r: r["batch"] / r["p50_ms"]}


def latencies(report: dict, batch: int = 1) -> dict[str, tuple[float, float]]:
    """engine -> (p50 us, p99 us) at ``batch`` (each engine's best configuration)."""
    return {r["engine"]: (1e3 * r["p50_ms"], 1e3 * (r["p99_ms"] or float("nan")))
            for r in report["rows"] if r["batch"] == batch}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("artifact")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--out", default="results/bench-runs")
    ap.add_argument("--summarize", metavar="DIR", help="summarize the run*.json files in DIR, run nothing")
    args, extra = ap.parse_known_args(argv)
    if args.summarize:
        reports = [json.loads(p.read_text()) for p in sorted(Path(args.summarize).glob("run*.json"))]
    else:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        reports = []
        for i in range(args.runs):
            reports.append(run_once(args.artifact, out / f"run{i + 1}.json", args.seconds, extra))
            print(f"run {i + 1}/{args.runs} done", file=sys.stderr)
    print(f"{reports[0]['machine']}, {reports[0]['logical_cpus']} logical CPUs, threads "
          f"{reports[0]['threads']}; {len(reports)} runs of lenet-bench {args.artifact}; FP32 matmul "
          "rate per run: " + ", ".join(f"{r['sgemm_gflops']:.0f}" for r in reports) + " GFLOP/s")
    for rate_name, rate in RATES.items():
        per_run = [ratios(r, rate) for r in reports]
        keys = list(per_run[0][min(per_run[0])].keys())
        print(f"\nratios by {rate_name}: median of the runs (worst run)\n")
        print("| batch | " + " | ".join(keys) + " |")
        print("| ---: |" + " ---: |" * len(keys))
        for batch in sorted(per_run[0]):
            cells = []
            for k in keys:
                vals = [p[batch][k] for p in per_run if k in p[batch]]
                cells.append(f"{statistics.median(vals):.2f}× ({min(vals):.2f}×)")
            print(f"| {batch} | " + " | ".join(cells) + " |")
    print("\nbatch-1 latency, µs: p50 median (worst run), p99 median (worst run)\n")
    print("| runtime | p50 | p99 |")
    print("| --- | ---: | ---: |")
    lat = [latencies(r) for r in reports]
    for engine in lat[0]:
        p50 = [x[engine][0] for x in lat if engine in x]
        p99 = [x[engine][1] for x in lat if engine in x]
        print(f"| {engine} | {statistics.median(p50):,.1f} ({max(p50):,.1f}) | "
              f"{statistics.median(p99):,.1f} ({max(p99):,.1f}) |")
    acc = reports[0].get("int8_accuracy")
    if acc:
        print("\nMNIST test accuracy: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in acc.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
