"""lenet-export CHECKPOINT --out DIR: the checkpoint as TorchScript, ONNX and torch.export files,
a manifest that lets a loader trust them, and a parity check that they compute what it computes.

Steps: read the checkpoint (``weights_only=True``: a pickle that would run code is refused),
export each format into a staging directory, run the parity check on the staged files, write
``manifest.json``, then publish. Nothing lands in DIR until every step has passed:

* DIR does not exist: it is staged as a hidden sibling and renamed into place (atomic).
* DIR exists (a re-export, maybe next to ``bench.json``): staged inside DIR as a hidden
  directory, then each file is renamed over its old version, ``manifest.json`` last, and model
  files of formats not exported this time are removed. A reader racing the publish can see a new
  file with the old manifest; the hash check then refuses it rather than trusting a mix.

Any failure removes the staging directory, prints one line naming the cause and exits 1.

An existing DIR is only written to where lenet-export owns the names: a ``model.*`` file or a
``manifest.json`` that no earlier lenet-export manifest there lists is the user's, and the export
refuses before it starts rather than replace it. Staging directories carry the exporting process's
id; one whose process is gone (an export killed with SIGKILL) is removed by the next export to the
same DIR.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import pretrained
from .artifacts import FILES, INT8_FILE, MANIFEST, file_entry, load_artifact, sha256_file
from .checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from .messages import first_line

MANIFEST_FORMAT = "lenet-artifacts"
MANIFEST_VERSION = 1
STAGING_PREFIX = ".lenet-export-"
OWNED_FILES = (*FILES.values(), INT8_FILE)  # model files lenet-export writes
PRECISIONS = ("fp32", "int8")


class ExportError(RuntimeError):
    """An export that cannot be completed; the message is the one line the user sees."""


def parse_formats(text: str) -> list[str]:
    wanted = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in FILES]
    if unknown or not wanted:
        raise argparse.ArgumentTypeError(
            f"unknown format(s) {', '.join(unknown) or '(none)'}; choose from {','.join(FILES)}")
    return [f for f in FILES if f in wanted]  # canonical order, duplicates dropped


def build_parser() -> argparse.ArgumentParser:
    from .exporters import DEFAULT_OPSET, OPSETS
    from .parity import BATCHES, RTOL

    ap = argparse.ArgumentParser(
        prog="lenet-export",
        description="Export a lenet checkpoint as model.torchscript.pt (TorchScript, loadable from "
                    "C++ libtorch), model.onnx (standard operators, dynamic batch; ONNX Runtime "
                    "and OpenCV DNN) and model.pt2 (torch.export), with manifest.json recording "
                    "the spec, every file's SHA-256, versions, the source checkpoint and the "
                    "parity report.",
        epilog=f"Parity check: eager PyTorch, TorchScript, ONNX Runtime, OpenCV DNN and the "
               f"torch.export program against float64 eager at batch sizes "
               f"{', '.join(map(str, BATCHES))} on random inputs and real test digits; fails past "
               f"a max relative error of {RTOL:g} (per image, relative to its score scale). "
               "Exit status: 0 ok, 1 export or parity failure, 2 bad arguments.")
    ap.add_argument("checkpoint", help="checkpoint written by lenet-train (e.g. runs/demo/best.pt), "
                                       "or the name of pretrained weights the package ships "
                                       "(e.g. lenet5-mnist)")
    ap.add_argument("--out", required=True, metavar="DIR",
                    help="artifact directory (created; an existing one is updated in place)")
    ap.add_argument("--formats", type=parse_formats, default=list(FILES), metavar="LIST",
                    help=f"comma-separated subset of {','.join(FILES)} (default: all)")
    ap.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                    help=f"ONNX opset, {OPSETS.start}..{OPSETS.stop - 1} (default: {DEFAULT_OPSET})")
    ap.add_argument("--no-verify", action="store_true", help="skip the parity check")
    ap.add_argument("--precision", choices=PRECISIONS, default="fp32",
                    help="int8: also calibrate on the training images (all of them), record the "
                         f"scales in the manifest for lenet_ext.load(DIR, precision='int8') and "
                         f"write {INT8_FILE}, the same quantized math as a QDQ ONNX model; parity: "
                         "ONNX Runtime on it and the INT8 engine on the test images")
    ap.add_argument("--data-dir", default=None, metavar="DIR",
                    help="where the dataset lives (default: data/), for --precision int8")
    ap.add_argument("--calibration-dataset", default=None, metavar="NAME",
                    help="dataset whose training split calibrates int8 (default: the one the "
                         "checkpoint was trained on)")
    return ap


def progress(msg: str) -> None:
    print(msg, flush=True)


# --- output directory ---------------------------------------------------------------------------

def check_output_dir(out: Path, checkpoint: Path | None = None) -> None:
    """Refuse an output path that is a file, sits under a file, cannot be written, or holds
    files of ours that lenet-export did not write."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a directory")
    if checkpoint is not None and checkpoint.parent.resolve() == out.resolve() \
            and checkpoint.name in (*OWNED_FILES, MANIFEST):
        raise ExportError(f"{out}: the checkpoint {checkpoint} would be overwritten by the export; "
                          "choose another --out")
    if out.is_dir():
        check_owned(out)
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ExportError(f"{out}: cannot create it, {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ExportError(f"{out}: not writable ({probe} does not permit writing)")


def owned_names(out: Path) -> set[str]:
    """The names in ``out`` that an earlier lenet-export wrote: its manifest and the files that
    manifest lists. Empty when there is no manifest of ours."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return set()
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT \
            or not isinstance(manifest.get("artifacts"), dict):
        return set()
    return {MANIFEST} | {name for name in manifest["artifacts"] if name in OWNED_FILES}


def check_owned(out: Path) -> None:
    """Refuse to replace a file in ``out`` that an earlier lenet-export did not write."""
    owned = owned_names(out)
    for name in (*OWNED_FILES, MANIFEST):
        if (out / name).exists() or (out / name).is_symlink():
            if name not in owned:
                why = ("it is not a lenet-export manifest" if name == MANIFEST
                       else f"no lenet-export {MANIFEST} there lists it")
                raise ExportError(f"{out / name}: not written by lenet-export ({why}); refusing to "
                                  "replace it: move it away or choose another --out")


def staging_prefix(out: Path, inside: bool) -> str:
    return (STAGING_PREFIX if inside else f".{out.name}{STAGING_PREFIX}") + f"{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove staging directories that killed exports to ``out`` left behind: those whose
    process (the id in the name) no longer runs on this machine. A running export's is kept."""
    removed: list[Path] = []
    for where, prefix in ((out, STAGING_PREFIX), (out.parent, f".{out.name}{STAGING_PREFIX}")):
        if not where.is_dir():
            continue
        for path in where.iterdir():
            if not path.name.startswith(prefix) or path.is_symlink() or not path.is_dir():
                continue
            # Older exports named their staging directory without a process id: always stale.
            pid = re.match(r"(\d+)-", path.name[len(prefix):])
            if pid and _alive(int(pid.group(1))):
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def make_staging(out: Path) -> Path:
    try:
        if out.is_dir():
            return Path(tempfile.mkdtemp(prefix=staging_prefix(out, inside=True), dir=out))
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=staging_prefix(out, inside=False), dir=out.parent))
        # mkdtemp makes it 0700; it becomes DIR, which should get the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)
        return staging
    except OSError as exc:
        raise ExportError(f"{out}: cannot write there ({exc.strerror or exc})") from None


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(staging: Path, out: Path, names: list[str]) -> None:
    """Move the staged files into ``out`` (see the module docstring for the guarantees)."""
    for name in names:
        fsync_path(staging / name)
    fsync_path(staging)
    if not out.exists() and staging.parent == out.parent:
        os.rename(staging, out)
        fsync_path(out.parent)
        return
    if staging.parent != out:  # DIR appeared while we worked: fall back to per-file moves
        out.mkdir(parents=True, exist_ok=True)
    check_owned(out)  # again: a file may have appeared while we worked
    owned = owned_names(out)
    for name in [n for n in names if n != MANIFEST] + [MANIFEST]:
        os.replace(staging / name, out / name)
    for name in OWNED_FILES:
        if name not in names and name in owned and (out / name).exists():
            (out / name).unlink()
    staging.rmdir()
    fsync_path(out)


# --- the steps ----------------------------------------------------------------------------------

def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # tensors / numpy scalars in recorded metrics
        return value.tolist()
    return str(value)


def finite_or_null(value: Any) -> Any:
    """``value`` with NaN/Inf floats (a diverged epoch's loss) as None: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_null(v) for v in value]
    return value


def source_record(path: Path, state: dict[str, Any]) -> dict[str, Any]:
    args = state.get("args") if isinstance(state.get("args"), dict) else {}
    metrics = state.get("metrics") or []
    record = {
        "checkpoint": str(path),
        **file_entry(path),
        "epoch": state.get("epoch"),
        "dataset": args.get("dataset"),
        "best_accuracy": state.get("best_accuracy"),
        "final_metrics": metrics[-1] if metrics else None,
        "metrics": metrics,
    }
    return finite_or_null(json.loads(json.dumps(record, default=_jsonable)))


def versions(opset: int | None) -> dict[str, Any]:
    import onnx
    import torch

    from . import __version__

    v = {"lenet": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
         "python": platform.python_version()}
    for module in ("onnxruntime", "cv2"):
        try:
            v["opencv" if module == "cv2" else module] = __import__(module).__version__
        except ImportError:
            pass
    if opset is not None:
        v["onnx_opset"] = opset
    return v


def export_formats(model, staging: Path, formats: list[str], opset: int) -> dict[str, Path]:
    from .exporters import WRITERS

    files: dict[str, Path] = {}
    for i, fmt in enumerate(formats, 1):
        path = staging / FILES[fmt]
        t0 = time.perf_counter()
        progress(f"[export {i}/{len(formats)}] {fmt} → {FILES[fmt]}"
                 + (f" (opset {opset})" if fmt == "onnx" else ""))
        try:
            if fmt == "onnx":
                WRITERS[fmt](model, path, opset)
            else:
                WRITERS[fmt](model, path)
        except OSError as exc:  # a full disk: the file is in staging, nothing is published
            raise ExportError(f"cannot write {FILES[fmt]} (staged in {staging}): "
                              f"{exc.strerror or exc}; nothing was published") from None
        except Exception as exc:
            text = str(exc).strip().splitlines()
            raise ExportError(f"{fmt} export failed: {type(exc).__name__}: "
                              f"{text[0] if text else ''}") from None
        progress(f"    {path.stat().st_size:,} bytes in {time.perf_counter() - t0:.1f} s")
        files[fmt] = path
    return files


def pretrained_state(name: str) -> dict[str, Any]:
    """Shipped pretrained weights (``lenet5-mnist``) as the checkpoint an export starts from: the
    spec and weights of their artifact, and the training record their manifest keeps."""
    import torch

    try:
        directory = pretrained.shipped(name)
    except ValueError as exc:
        raise CheckpointError(f"{name}: no such checkpoint file, and {exc}") from None
    art = load_artifact(directory)
    source = (art.manifest or {}).get("source") or {}
    return {"spec": art.spec.to_dict(), "model": {k: torch.from_numpy(v) for k, v in art.state_dict.items()},
            "epoch": source.get("epoch"), "best_accuracy": source.get("best_accuracy"),
            "metrics": source.get("metrics") or [], "args": {"dataset": source.get("dataset")}}


def int8_inputs(args: argparse.Namespace, spec, state: dict[str, Any]):
    """Checked before anything is written: the spec has an INT8 form, and the calibration (training)
    and parity (test) images can be read."""
    from .data import DataError
    from .export_int8 import training_images
    from .quant import QuantError, check_supported

    try:
        check_supported(spec)
    except QuantError as exc:
        raise ExportError(str(exc)) from None
    args_dataset = (state.get("args") or {}).get("dataset") if isinstance(state.get("args"), dict) else None
    dataset = args.calibration_dataset or args_dataset
    if not dataset:
        raise ExportError("--precision int8: the checkpoint does not say which dataset trained it; "
                          "pass --calibration-dataset")
    try:
        return dataset, *training_images(dataset, args.data_dir)
    except (DataError, ValueError) as exc:
        raise ExportError(f"--precision int8: {first_line(str(exc))}") from None


def int8_export(args: argparse.Namespace, model, data, staging: Path) -> dict[str, Any]:
    """Calibrate, write the QDQ model into staging, check its parity; the manifest's int8 block."""
    from .export_int8 import check_parity, write

    dataset, train, test, labels = data
    params = {k: v.detach().cpu().float().numpy() for k, v in model.state_dict().items()}
    block, path = write(model.spec, params, train, dataset, staging, progress)
    if args.no_verify:
        block["parity"] = {"skipped": True, "reason": "--no-verify"}
        return block
    progress(f"[verify] int8: ONNX Runtime on {path.name} vs the INT8 engine, {len(test):,} test images")
    try:
        block["parity"] = check_parity(model.spec, params, block, path, test, labels)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    p = block["parity"]
    progress(f"    labels agree {p['label_agreement']:.2%}, scores within {p['max_score_difference']:.3g} "
             f"(one step {p['score_step']:.3g}); accuracy int8 {p['accuracy']['int8_engine']:.2%}, "
             f"fp32 {p['accuracy']['fp32_engine']:.2%}")
    return block


def run(args: argparse.Namespace) -> int:
    ckpt, out = Path(args.checkpoint), Path(args.out)
    progress(f"[read] {ckpt}")
    if ckpt.is_dir() and args.checkpoint in pretrained.names():
        raise CheckpointError(f"{ckpt}: a folder here has the name of the shipped pretrained weights; "
                              f"for them run lenet-export from another folder, for the folder pass "
                              f"its model file ({ckpt}/model.onnx) to lenet_ext or a checkpoint here")
    if not ckpt.exists() and pretrained.looks_like_a_name(ckpt):
        state = pretrained_state(args.checkpoint)
        ckpt = pretrained.shipped(args.checkpoint) / MANIFEST
    else:
        state = load_checkpoint(ckpt)  # CheckpointError: missing/truncated/corrupt/pickled code
    model = model_from_checkpoint(state, ckpt)  # unknown arch, wrong shapes, NaN weights
    spec = model.spec
    progress(f"    {spec.arch}, {len(spec.class_names)} classes, epoch {state.get('epoch')}, "
             f"input {spec.input_size}x{spec.input_size}")
    int8_data = None
    if args.precision == "int8":
        int8_data = int8_inputs(args, spec, state)
    check_output_dir(out, ckpt)
    for stale in remove_stale_staging(out):
        progress(f"    removed {stale} (left by an export that was killed)")
    staging = make_staging(out)
    try:
        files = export_formats(model, staging, args.formats, args.opset)
        report: dict[str, Any]
        if args.no_verify:
            progress("[verify] skipped (--no-verify)")
            report = {"skipped": True, "reason": "--no-verify"}
        else:
            from .parity import ParityError, check_parity, format_table

            progress("[verify] parity against float64 eager PyTorch")
            try:
                report = check_parity(model, files)
            except ParityError as exc:
                partial = getattr(exc, "report", None)
                if partial is not None:
                    progress(format_table(partial))
                raise ExportError(str(exc)) from None
            progress(format_table(report))
        int8_block = None
        if int8_data is not None:
            int8_block = int8_export(args, model, int8_data, staging)
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "spec": spec.to_dict(),
            "artifacts": {FILES[f]: {**file_entry(p), "format": f} for f, p in files.items()},
            "io": {"input": {"name": "input", "dtype": "float32",
                             "shape": ["batch", 1, spec.input_size, spec.input_size]},
                   "output": {"name": "scores", "dtype": "float32",
                              "shape": ["batch", spec.num_classes],
                              "meaning": "larger = more likely"
                                         + ("; minus the RBF distances" if spec.head == "rbf" else "")}},
            "onnx": ({"opset": args.opset, "exporter": "torch.onnx.export(dynamo=False), "
                      "TorchScript-based, constants folded", "graph": "plain (lenet.plain)",
                      "domains": ["ai.onnx"]}
                     if "onnx" in files else None),
            "versions": versions(args.opset if "onnx" in files else None),
            "source": source_record(ckpt, state),
            "parity": report,
        }
        if int8_block is not None:
            manifest["artifacts"][INT8_FILE] = {**file_entry(staging / INT8_FILE), "format": "onnx-qdq-int8"}
            manifest["int8"] = int8_block
        try:
            text = json.dumps(finite_or_null(manifest), indent=2, allow_nan=False)
            (staging / MANIFEST).write_text(text + "\n")
        except OSError as exc:
            raise ExportError(f"cannot write {MANIFEST} (staged in {staging}): "
                              f"{exc.strerror or exc}; nothing was published") from None
        names = [FILES[f] for f in files] + ([INT8_FILE] if int8_block is not None else []) + [MANIFEST]
        progress(f"[publish] {out}")
        try:
            publish(staging, out, names)
        except OSError as exc:
            raise ExportError(f"{out}: cannot publish the artifacts ({exc.strerror or exc})") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    for name in names:
        progress(f"    {out / name}  sha256 {sha256_file(out / name)[:16]}…")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    from .exporters import OPSETS

    if args.opset not in OPSETS:
        ap.error(f"--opset {args.opset} not supported; choose {OPSETS.start}..{OPSETS.stop - 1}")
    try:
        return run(args)
    except (CheckpointError, ExportError) as exc:
        print(f"lenet-export: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lenet-export: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
