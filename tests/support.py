"""Helpers shared by the test packages: spread-out models, checkpoints, lenet-export in-process."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch

from lenet.checkpoint import save_checkpoint
from lenet.export import main as export_main
from lenet.models import build_model

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
