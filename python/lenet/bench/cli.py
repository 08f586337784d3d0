"""The ``lenet-bench`` command: argument parsing, then the CPU (:mod:`.cpu`) or the CUDA
(:mod:`.cuda`) benchmark."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .measure import CPU_BATCH_SIZES


def batch_sizes(text: str) -> list[int]:
    """--batch-sizes: positive integers (a batch of 0 crashes OpenCV DNN with SIGFPE)."""
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be at least 1, got {text!r}")
    return sizes


def check_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Everything that can be refused before minutes of timing start (exit status 2)."""
    import math

    from ..paths import OutputError, check_output_file, missing_reason

    artifact = Path(args.artifact)
    if not artifact.exists():
        ap.error(f"{artifact}: {missing_reason(artifact)}")
    if not (artifact / "manifest.json").is_file():
        ap.error(f"{args.artifact}: not an artifact directory (no manifest.json); run lenet-export")
    if args.threads is not None and not 1 <= args.threads <= 1024:
        ap.error(f"--threads must be in 1..1024, got {args.threads}")
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        ap.error(f"--seconds must be a positive number, got {args.seconds}")
    if args.json:
        try:
            check_output_file(args.json, [*artifact.iterdir()], "--json")
        except OutputError as exc:
            ap.error(str(exc))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="lenet-bench",
        description="Throughput of lenet_ext against PyTorch eager, TorchScript (frozen + "
                    "optimize_for_inference), ONNX Runtime (best of 1/N threads, spinning on/off) "
                    "and OpenCV DNN, each on the files lenet-export ships, on the same inputs in "
                    "one process: images/s, p50 latency, the ratio to the best peer and the "
                    "fraction of this machine's measured FP32 matmul rate. A benchmark: run it on "
                    "a quiet machine.")
    ap.add_argument("artifact", help="artifact directory written by lenet-export")
    ap.add_argument("--batch-sizes", default=",".join(map(str, CPU_BATCH_SIZES)), type=batch_sizes,
                    help="comma-separated batch sizes (default 1,16,256,4096; with --device cuda "
                         "1,256,4096,65536)")
    ap.add_argument("--threads", type=int, default=None, help="thread budget (default: all CPUs)")
    ap.add_argument("--seconds", type=float, default=1.0,
                    help="timing budget per engine and batch size, in seconds (default 1)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cuda: lenet_ext CUDA against PyTorch CUDA, CUDA graphs and ONNX Runtime's "
                         "CUDA provider (needs a GPU)")
    ap.add_argument("--json", help="also write the results to this file")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    check_args(ap, args)
    if args.device == "cuda":
        from . import cuda

        return int(cuda.run(args) or 0)
    from ..artifacts import ArtifactError
    from ..paths import OutputError
    from . import cpu

    try:
        cpu.run(args)
    except (ArtifactError, OutputError) as exc:  # a tampered artifact, a disk that filled up
        print(f"lenet-bench: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
