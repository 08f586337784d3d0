"""Shared fixtures of the engine tests: models of every arch the engine runs, a float64 PyTorch reference, the
preprocessing contract in numpy, and artifact directories in the export contract's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lenet.spec import ENGINE_ARCHS, ArchSpec

import lenet_ext

from ..support import make_model, run_export, write_checkpoint  # noqa: F401 (used by the tests)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def normalize(images: np.ndarray, spec: ArchSpec) -> np.ndarray:
    """Preprocessing contract in float64: uint8 [N,S,S] -> [N,1,input_size,input_size]."""
    pre = spec.preprocessing
    ink = images.astype(np.float64) / 255.0
    if pre.ink != "white_on_black":
        ink = 1.0 - ink
    x = pre.offset + pre.scale * ink
    pad = (spec.input_size - images.shape[-1]) // 2
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), constant_values=pre.offset)
    return x[:, None]


def reference_scores(model: torch.nn.Module, x64: np.ndarray) -> np.ndarray:
    """PyTorch eager in float64: the slow, obviously-right reference."""
    m64 = model.double()
    try:
        with torch.no_grad():
            return m64(torch.from_numpy(np.ascontiguousarray(x64, dtype=np.float64))).numpy()
    finally:
        model.float()


def assert_scores_close(got: np.ndarray, ref: np.ndarray, rtol: float = 1e-4) -> None:
    """≤ rtol relative, relative to each image's score scale (linear scores cross zero)."""
    assert got.shape == ref.shape and got.dtype == np.float32
    scale = np.maximum(np.abs(ref).max(axis=1, keepdims=True), 1.0)
    err = np.abs(got.astype(np.float64) - ref) / scale
    assert err.max() <= rtol, f"max relative error {err.max():.3g} (image {err.max(axis=1).argmax()})"


@pytest.fixture(scope="session", params=ENGINE_ARCHS)
def arch(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def model_and_engine(arch):
    model = make_model(arch)
    return model, lenet_ext.from_state_dict(model.spec, model.state_dict())


def write_artifact(model: torch.nn.Module, out: Path) -> Path:
    """An artifact dir written by the real lenet-export (every format, parity skipped: the
    export tests cover it)."""
    ckpt = write_checkpoint(model, out.parent / f"{out.name}.pt")
    rc, _, err = run_export(ckpt, "--out", out, "--formats", "onnx,torchscript,pt2", "--no-verify")
    assert rc == 0, err
    return out


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory, arch) -> tuple[torch.nn.Module, Path]:
    model = make_model(arch, seed=1)
    return model, write_artifact(model, tmp_path_factory.mktemp(f"art-{arch}"))
