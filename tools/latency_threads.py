"""Per-call latency of the FP32 and INT8 engines at small batches, one thread against two: where
the time and the variance of a small call go on a shared machine.

    python tools/latency_threads.py artifacts/int8 --reps 3 --calls 3000

For each (batch, precision, threads): p50 and p99 of single-call times in µs, and images/s from
the mean call, as the median and the worst of --reps repetitions (engines reloaded each time).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import lenet_ext


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("artifact")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--calls", type=int, default=3000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    results: dict[tuple, list] = {}
    for _ in range(args.reps):
        for n in map(int, args.batches.split(",")):
            x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            for precision in ("fp32", "int8"):
                for threads in (1, 2):
                    engine = lenet_ext.load(args.artifact, threads=threads, precision=precision)
                    for _ in range(100):
                        engine.scores(x)
                    times = np.empty(args.calls)
                    for i in range(args.calls):
                        t = time.perf_counter()
                        engine.scores(x)
                        times[i] = time.perf_counter() - t
                    times *= 1e6
                    results.setdefault((n, precision, threads), []).append(
                        (np.median(times), np.percentile(times, 99), n / times.mean() * 1e6))
    print("| batch | precision | threads | p50 µs median (worst) | p99 µs median (worst) | images/s from the mean call, median (worst) |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for (n, precision, threads), v in sorted(results.items()):
        a = np.array(v)
        print(f"| {n} | {precision} | {threads} | {np.median(a[:, 0]):.1f} ({a[:, 0].max():.1f}) | "
              f"{np.median(a[:, 1]):,.0f} ({a[:, 1].max():,.0f}) | {np.median(a[:, 2]):,.0f} ({a[:, 2].min():,.0f}) |")


if __name__ == "__main__":
    main()
