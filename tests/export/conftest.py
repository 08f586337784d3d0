"""Fixtures of the export tests: checkpoints of every arch and their exported artifact dirs
(exported once per session: a full export with its parity check takes several seconds)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from lenet.checkpoint import save_checkpoint
from lenet.export import main
from lenet.models import build_model
from lenet.spec import ARCHS

METRICS = [{"epoch": 1, "train_loss": 0.9, "test_loss": 0.8, "train_acc": 0.7, "test_acc": 0.75},
           {"epoch": 2, "train_loss": 0.5, "test_loss": 0.4, "train_acc": 0.85, "test_acc": 0.88}]


def make_model(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(arch).eval()
    # Fresh weights sit near zero; spread them so activations leave the squashing functions'
    # linear range and a wrong op in an export would show.
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


def run_export(*argv: str) -> tuple[int, str, str]:
    """lenet-export in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse errors
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    scale = np.maximum(np.abs(ref).max(axis=1, keepdims=True), 1.0)
    return float((np.abs(got.astype(np.float64) - ref) / scale).max())


@pytest.fixture(scope="session", params=ARCHS)
def arch(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def exported(tmp_path_factory, arch):
    """(model, checkpoint path, artifact dir, stdout) of a default lenet-export run."""
    root = tmp_path_factory.mktemp(f"export-{arch}")
    model = make_model(arch, seed=1)
    ckpt = write_checkpoint(model, root / "best.pt")
    rc, out, err = run_export(ckpt, "--out", root / "art")
    assert rc == 0, err
    return model, ckpt, root / "art", out


@pytest.fixture(scope="session")
def relu_checkpoint(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    """The quickest arch to export, for tests about the CLI rather than the numbers."""
    model = make_model("lenet-relu", seed=2)
    return model, write_checkpoint(model, tmp_path_factory.mktemp("relu") / "relu.pt")
