"""Helpers shared by the test packages: spread-out models, checkpoints, lenet-export in-process,
a training run killed and resumed, the wheel installed into fresh venvs."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import venv
from dataclasses import dataclass
from pathlib import Path

import torch

from lenet.checkpoint import save_checkpoint
from lenet.export import main as export_main
from lenet.models import build_model

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / "build" / "light-install"

METRICS = [{"epoch": 1, "train_loss": 0.9, "test_loss": 0.8, "train_acc": 0.7, "test_acc": 0.75},
           {"epoch": 2, "train_loss": 0.5, "test_loss": 0.4, "train_acc": 0.85, "test_acc": 0.88}]


def make_model(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(arch).eval()
    # Fresh weights sit near zero; spread them so activations leave the squashing functions'
    # linear range and a wrong op (in an export or a kernel) would show.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("s") and name.endswith("coef"):
                p.uniform_(0.2, 0.6)
            elif name.endswith("bias"):
                p.uniform_(-0.3, 0.3)
    return model


def write_checkpoint(model: torch.nn.Module, path: Path, **extra) -> Path:
    save_checkpoint(path, {"spec": model.spec.to_dict(), "model": model.state_dict(),
                           "metrics": METRICS, "epoch": 2, "best_accuracy": 0.88,
                           "args": {"dataset": "mnist-sample"}, **extra})
    return path


def run_export(*argv) -> tuple[int, str, str]:
    """lenet-export in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = export_main([str(a) for a in argv])
        except SystemExit as exc:  # argparse errors
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


@dataclass
class KilledRun:
    reference: Path                       # the same run, never interrupted
    killed: Path                          # the run directory of the killed one
    after_kill: dict                      # its last.pt as the kill left it
    epochs_logged: int                    # lines of its metrics.jsonl as the kill left it
    resumed: subprocess.CompletedProcess  # `lenet-train ... --resume` on it


def kill_then_resume(args: list[str], tmp_path: Path, ready: str, settle: float = 0.0,
                     timeout: float = 300) -> KilledRun:
    """The experiment behind every resume test: ``lenet-train ARGS`` run to the end, the same run
    SIGKILLed once the file ``ready`` appears in its run directory (plus ``settle`` seconds), then
    resumed with ``--resume``. The caller asserts what the kill left and what resuming made."""
    from lenet.checkpoint import load_checkpoint

    train = [str(Path(sys.executable).parent / "lenet-train"), "--quiet", *args]
    reference, killed = tmp_path / "ref", tmp_path / "killed"
    done = subprocess.run([*train, "--out", str(reference)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    proc = subprocess.Popen([*train, "--out", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while not (killed / ready).exists() and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(settle)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    after_kill = load_checkpoint(killed / "last.pt")
    metrics = killed / "metrics.jsonl"
    logged = len(metrics.read_text().splitlines()) if metrics.exists() else 0
    resumed = subprocess.run([*train, "--out", str(killed), "--resume"], capture_output=True, text=True)
    return KilledRun(reference, killed, after_kill, logged, resumed)


# The child processes get this environment: none of the test run's own preloads or import paths
# (make sanitize preloads ASan and points PYTHONPATH at its build).
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "PYTHONPATH")}


def run(*cmd, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """Run a command in CLEAN_ENV; fail the test with its output unless it exits 0."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          env=env or CLEAN_ENV, **kw)
    assert proc.returncode == 0, f"{cmd[:4]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def build_wheel() -> Path:
    """The wheel, built into build/light-install/ with its own CMake build directory (incremental
    after the first time; CPU only, so it needs no nvcc and never reconfigures the editable
    build)."""
    for old in WHEELS.glob("lenet-*.whl"):
        old.unlink()
    env = dict(CLEAN_ENV, LENET_CUDA="OFF")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "-w", WHEELS, "-Cbuild-dir=build/light-install/{wheel_tag}", ROOT, cwd=ROOT, env=env)
    (wheel,) = WHEELS.glob("lenet-*.whl")
    return wheel


def fresh_venv(env_dir: Path, requirement: str | Path) -> Path:
    """A new venv holding only ``requirement`` (the wheel, with or without an extra) and what it
    depends on, from pip's cache and the machine's wheels; returns its bin directory."""
    venv.create(env_dir, with_pip=True)
    run(env_dir / "bin" / "python", "-m", "pip", "install", "-q", requirement)
    return env_dir / "bin"


def installed(bin_dir: Path) -> set[str]:
    """Lower-case names of the distributions installed in a venv."""
    freeze = run(bin_dir / "python", "-m", "pip", "freeze").stdout.splitlines()
    return {line.split("==")[0].lower() for line in freeze}
