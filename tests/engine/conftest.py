"""Shared fixtures of the engine tests: models of every arch, a float64 PyTorch reference, the
preprocessing contract in numpy, and artifact directories in the export contract's layout."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lenet.models import build_model
from lenet.spec import ARCHS, ArchSpec

import lenet_ext

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def make_model(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(arch).eval()
    # Fresh weights sit near zero; spread them so activations leave tanh's linear range and the
    # test exercises the squashing functions over their whole domain.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("s") and name.endswith("coef"):
                p.uniform_(0.2, 0.6)
            elif name.endswith("bias"):
                p.uniform_(-0.3, 0.3)
    return model


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


@pytest.fixture(scope="session", params=ARCHS)
def arch(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def model_and_engine(arch):
    model = make_model(arch)
    return model, lenet_ext.from_state_dict(model.spec, model.state_dict())


def write_artifact(model: torch.nn.Module, out: Path) -> Path:
    """An artifact dir as lenet-export writes it (the contract: ONNX initializers keep the
    state-dict names, the spec in metadata_props["lenet.json"], a manifest with hashes)."""
    import onnx

    out.mkdir(parents=True, exist_ok=True)
    spec = model.spec
    size = spec.input_size
    x = torch.zeros(2, 1, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(out / "model.onnx"), input_names=["x"],
                          output_names=["scores"], dynamic_axes={"x": {0: "n"}, "scores": {0: "n"}},
                          do_constant_folding=False, dynamo=False)
        proto = onnx.load(str(out / "model.onnx"))
        entry = proto.metadata_props.add()
        entry.key, entry.value = "lenet.json", spec.to_json()
        onnx.save(proto, str(out / "model.onnx"))
        traced = torch.jit.trace(model, x)
        torch.jit.save(traced, str(out / "model.torchscript.pt"),
                       _extra_files={"lenet.json": spec.to_json()})
    artifacts = {}
    for name in ("model.onnx", "model.torchscript.pt"):
        data = (out / name).read_bytes()
        artifacts[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (out / "manifest.json").write_text(json.dumps({"spec": spec.to_dict(), "artifacts": artifacts},
                                                  indent=2))
    return out


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory, arch) -> tuple[torch.nn.Module, Path]:
    model = make_model(arch, seed=1)
    return model, write_artifact(model, tmp_path_factory.mktemp(f"art-{arch}"))
