"""Parity check: do the exported files compute what the checkpoint computes?

Every runtime that will meet the artifacts in the field — PyTorch eager (float32), TorchScript,
ONNX Runtime, OpenCV DNN (on the same ``model.onnx``) and the ``torch.export`` program — runs the
same inputs at batch sizes 1, 7 and 256 (the files were exported at batch 3, so this also proves
the batch dimension is dynamic): random inputs spanning the preprocessing contract's value range,
and real handwritten test digits through the contract. Each is compared with a float64 PyTorch
eager run of the same weights, the slow, obviously-right reference.

Error measure (the engine tests use the same one): for each image, |scores − reference| divided by
max(max |reference score|, 1), i.e. relative to that image's score scale — linear heads produce
scores near zero where a plain elementwise relative error means nothing. Tolerance: 1e-4.
Float32 lands around 1e-7 on these networks, so 1e-4 only trips on a real export fault (a wrong
op, a lost weight, a baked-in batch size), never on rounding.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .artifacts import quiet_torch_deprecations
from .messages import first_line
from .spec import ArchSpec

RTOL = 1e-4
BATCHES = (1, 7, 256)
SEED = 2026

Runner = Callable[[np.ndarray], np.ndarray]


class ParityError(RuntimeError):
    """A runtime disagrees with eager PyTorch past the tolerance, or cannot run the file."""


@dataclass
class Case:
    inputs: str          # "random" | "test-images"
    batch: int
    x: np.ndarray        # float32 [N, 1, S, S]


def relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    scale = np.maximum(np.abs(ref).max(axis=1, keepdims=True), 1.0)
    return float((np.abs(got.astype(np.float64) - ref) / scale).max())


def real_images(spec: ArchSpec, count: int) -> tuple[np.ndarray, str] | None:
    """``count`` real handwritten digits (mnist-sample test split, a fixed shuffle so every class
    appears) through the spec's preprocessing contract, or None when the data is unavailable."""
    try:
        from .data import mnist_sample_arrays, preprocess

        images = mnist_sample_arrays()["test_x"]
    except Exception:
        return None
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(SEED))[:count]
    return preprocess(images[order], spec).numpy(), "mnist-sample test split"


def cases(spec: ArchSpec, batches=BATCHES) -> tuple[list[Case], str]:
    """The inputs every runtime sees, and a note saying where the real images came from."""
    pre = spec.preprocessing
    lo, hi = sorted((pre.offset, pre.offset + pre.scale))
    rng = np.random.default_rng(SEED)
    size = spec.input_size
    out = [Case("random", b, rng.uniform(lo, hi, (b, 1, size, size)).astype(np.float32))
           for b in batches]
    real = real_images(spec, max(batches))
    if real is None:
        return out, "real test images unavailable (mnist-sample could not be read): random only"
    x, source = real
    out += [Case("test-images", b, np.ascontiguousarray(x[:b])) for b in batches]
    return out, source


def runners(model: torch.nn.Module, files: dict[str, Path]) -> dict[str, tuple[str, Runner]]:
    """runtime name → (format, run function) for eager PyTorch and every exported file."""
    def torch_runner(module) -> Runner:
        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return module(torch.from_numpy(x)).numpy()
        return run

    out: dict[str, tuple[str, Runner]] = {"eager": ("pytorch", torch_runner(model.eval()))}
    if "torchscript" in files:
        with quiet_torch_deprecations():
            ts = torch.jit.load(str(files["torchscript"]), map_location="cpu")
        out["torchscript"] = ("torchscript", torch_runner(ts.eval()))
    if "onnx" in files:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
        out["onnxruntime"] = ("onnx", lambda x: sess.run(["scores"], {"input": x})[0])
        try:
            import cv2
        except ImportError:
            cv2 = None
        if cv2 is not None:
            net = cv2.dnn.readNetFromONNX(str(files["onnx"]))

            def run_cv2(x: np.ndarray) -> np.ndarray:
                net.setInput(x)
                return np.asarray(net.forward(), dtype=np.float32).reshape(len(x), -1)
            out["opencv-dnn"] = ("onnx", run_cv2)
    if "pt2" in files:
        program = torch.export.load(str(files["pt2"]))
        out["torch.export"] = ("pt2", torch_runner(program.module()))
    return out


def check_parity(model: torch.nn.Module, files: dict[str, Path], rtol: float = RTOL,
                 batches=BATCHES) -> dict:
    """Run every runtime on every case; return the report (see the module docstring). Raises
    ParityError naming the runtime and the error when one fails or exceeds ``rtol``."""
    spec: ArchSpec = model.spec
    case_list, source = cases(spec, batches)
    reference = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        refs = [reference(torch.from_numpy(c.x).double()).numpy() for c in case_list]
    try:
        runtimes = runners(model, files)
    except Exception as exc:
        raise ParityError(f"parity check could not load an exported file: "
                          f"{type(exc).__name__}: {first_line(exc)}") from None
    results: dict[str, dict] = {}
    failures: list[str] = []
    for name, (fmt, run) in runtimes.items():
        rows = []
        for case, ref in zip(case_list, refs):
            try:
                got = run(case.x)
            except Exception as exc:
                raise ParityError(f"{name} ({fmt}) failed to run {case.inputs} batch {case.batch}: "
                                  f"{type(exc).__name__}: {first_line(exc)}") from None
            if got.shape != ref.shape:
                raise ParityError(f"{name} ({fmt}) returned shape {tuple(got.shape)} for "
                                  f"{case.inputs} batch {case.batch}; expected {ref.shape}")
            rows.append({"inputs": case.inputs, "batch": case.batch,
                         "max_abs": float(np.abs(got.astype(np.float64) - ref).max()),
                         "max_rel": relative_error(got, ref),
                         "label_agreement": float((got.argmax(1) == ref.argmax(1)).mean())})
        worst = max(rows, key=lambda r: r["max_rel"])
        passed = worst["max_rel"] <= rtol
        if not passed:
            failures.append(f"{name} ({fmt}): max relative error {worst['max_rel']:.3g} > "
                            f"tolerance {rtol:g} ({worst['inputs']}, batch {worst['batch']})")
        n = sum(r["batch"] for r in rows)
        results[name] = {
            "format": fmt,
            "max_abs": max(r["max_abs"] for r in rows),
            "max_rel": worst["max_rel"],
            "label_agreement": sum(r["label_agreement"] * r["batch"] for r in rows) / n,
            "passed": passed,
            "cases": rows,
        }
    report = {
        "reference": "PyTorch eager, float64, same weights",
        "error": "per image: |scores - reference| / max(max|reference|, 1); max over images",
        "tolerance": {"max_rel": rtol},
        "batch_sizes": list(batches),
        "inputs": {"random": "uniform over the preprocessing contract's value range",
                   "test-images": source},
        "runtimes": results,
        "passed": not failures,
    }
    if failures:
        err = ParityError("parity check failed: " + "; ".join(failures))
        err.report = report  # type: ignore[attr-defined]
        raise err
    return report


def format_table(report: dict) -> str:
    """The parity report as a fixed-width table for the terminal."""
    lines = [f"{'runtime':<13} {'format':<12} {'max abs err':>12} {'max rel err':>12} "
             f"{'labels agree':>13}  result",
             "-" * 72]
    for name, r in report["runtimes"].items():
        lines.append(f"{name:<13} {r['format']:<12} {r['max_abs']:>12.3g} {r['max_rel']:>12.3g} "
                     f"{100 * r['label_agreement']:>12.2f}%  {'ok' if r['passed'] else 'FAIL'}")
    lines.append(f"reference: {report['reference']}; tolerance: max rel err ≤ "
                 f"{report['tolerance']['max_rel']:g}; batches {report['batch_sizes']}, "
                 f"{' + '.join(report['inputs'])} inputs")
    return "\n".join(lines)
