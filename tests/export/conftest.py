"""Fixtures of the export tests: checkpoints of every arch and their exported artifact dirs
(exported once per session: a full export with its parity check takes several seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lenet.spec import ARCHS

from ..support import METRICS, make_model, run_export, write_checkpoint  # noqa: F401 (used by the tests)

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
