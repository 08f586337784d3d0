"""Loaders: artifact dir / .onnx (read here, no torch), .torchscript.pt / .pt2 (through
``lenet.artifacts``, which needs torch) → the engine's arrays.

Every path ends in :func:`model_arrays`, which checks the spec (unknown names are refused by
name) and every weight's shape, and turns the LeCun C3 slots into the dense kernel + mask the
C++ ``Model`` holds.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from lenet.spec import ArchSpec, SpecError

# LeCun et al. 1998, Table I (DESIGN.md §3): C3 output map -> the S2 maps it reads. Kept here too
# so that loading an artifact never imports torch (lenet.models does).
LECUN_C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)
SPEC_KEY = "lenet.json"


class ArtifactError(ValueError):
    """An artifact that cannot be loaded: missing, truncated, corrupt, or inconsistent."""


def as_spec(spec: ArchSpec | Mapping[str, Any] | str | bytes) -> ArchSpec:
    if isinstance(spec, ArchSpec):
        return spec
    if isinstance(spec, (str, bytes)):
        return ArchSpec.from_json(spec)
    return ArchSpec.from_dict(dict(spec))


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor; no torch import needed
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def expected_shapes(spec: ArchSpec) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"c1.weight": (6, 1, 5, 5), "c1.bias": (6,)}
    if spec.pooling == "trainable":
        shapes.update({"s2.coef": (6,), "s2.bias": (6,), "s4.coef": (16,), "s4.bias": (16,)})
    if spec.c3_table == "lecun":
        shapes["c3.weight"] = (sum(len(t) for t in LECUN_C3_TABLE), 5, 5)
    else:
        shapes["c3.weight"] = (16, 6, 5, 5)
    shapes.update({"c3.bias": (16,), "c5.weight": (120, 16, 5, 5), "c5.bias": (120,),
                   "f6.weight": (84, 120), "f6.bias": (84,)})
    if spec.head == "rbf":
        shapes["output.prototypes"] = (10, 84)
    else:
        shapes.update({"output.weight": (spec.num_classes, 84), "output.bias": (spec.num_classes,)})
    return shapes


def model_arrays(spec: ArchSpec, state_dict: Mapping[str, Any]
                 ) -> tuple[dict[str, Any], dict[str, np.ndarray], np.ndarray]:
    """(spec dict, float32 weights in the engine's dense layout, C3 connection mask [16, 6])."""
    weights: dict[str, np.ndarray] = {}
    for name, shape in expected_shapes(spec).items():
        if name not in state_dict:
            raise ArtifactError(f"{spec.arch}: missing weight {name!r}")
        a = _to_numpy(state_dict[name])
        if tuple(a.shape) != shape:
            raise ArtifactError(f"{spec.arch}: weight {name!r} has shape {tuple(a.shape)}; "
                                f"expected {shape}")
        if not np.issubdtype(a.dtype, np.floating):
            raise ArtifactError(f"weight {name!r} has dtype {a.dtype}; expected floating point")
        a = np.ascontiguousarray(a, dtype=np.float32)
        if not np.isfinite(a).all():
            raise ArtifactError(f"weight {name!r} contains NaN or Inf")
        weights[name] = a
    if spec.c3_table == "lecun":
        dense = np.zeros((16, 6, 5, 5), np.float32)
        connected = np.zeros((16, 6), np.uint8)
        slot = 0
        for out, inputs in enumerate(LECUN_C3_TABLE):
            for i in inputs:
                dense[out, i] = weights["c3.weight"][slot]
                connected[out, i] = 1
                slot += 1
        weights["c3.weight"] = dense
    else:
        connected = np.ones((16, 6), np.uint8)
    return spec.to_dict(), weights, connected


# --- files --------------------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{directory}: no manifest.json (not an artifact directory?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or "spec" not in manifest:
        raise ArtifactError(f"{path}: no 'spec' in the manifest")
    if not isinstance(manifest.get("artifacts", {}), dict):
        raise ArtifactError(f"{path}: 'artifacts' must be an object")
    return manifest


def verify_hash(manifest: Mapping[str, Any], directory: Path, name: str) -> None:
    """Check one file against the manifest's size and sha256 (when the manifest lists it)."""
    entry = manifest.get("artifacts", {}).get(name)
    if entry is None:
        return
    path = directory / name
    if not path.is_file():
        raise ArtifactError(f"{path}: listed in manifest.json but missing")
    size = path.stat().st_size
    if "bytes" in entry and int(entry["bytes"]) != size:
        raise ArtifactError(f"{path}: {size} bytes but manifest.json says {entry['bytes']} "
                            "(truncated or replaced?)")
    if "sha256" in entry and sha256_file(path) != entry["sha256"]:
        raise ArtifactError(f"{path}: sha256 does not match manifest.json (corrupt or replaced?)")


def read_onnx(path: Path) -> tuple[ArchSpec, dict[str, np.ndarray]]:
    import onnx
    from onnx import numpy_helper

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no such file") from None
    except Exception as exc:  # protobuf raises DecodeError and friends on truncated files
        raise ArtifactError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    if SPEC_KEY not in meta:
        raise ArtifactError(f"{path}: no {SPEC_KEY!r} spec in the ONNX metadata")
    try:
        spec = ArchSpec.from_json(meta[SPEC_KEY])
    except SpecError as exc:
        raise ArtifactError(f"{path}: {exc}") from None
    arrays: dict[str, np.ndarray] = {}
    for init in proto.graph.initializer:
        try:
            arrays[init.name] = numpy_helper.to_array(init)
        except Exception as exc:
            raise ArtifactError(f"{path}: initializer {init.name!r} unreadable ({exc})") from None
    return spec, arrays


def load_arrays(path: str | os.PathLike[str]
                ) -> tuple[dict[str, Any], dict[str, np.ndarray], np.ndarray]:
    """Engine arrays from an artifact dir, ``.onnx``, ``.torchscript.pt`` or ``.pt2``."""
    p = Path(path)
    if p.is_dir():
        manifest = read_manifest(p)
        try:
            spec = as_spec(manifest["spec"])
        except SpecError as exc:
            raise ArtifactError(f"{p / 'manifest.json'}: {exc}") from None
        for name in manifest.get("artifacts", {}):
            verify_hash(manifest, p, name)
        onnx_path = p / "model.onnx"
        if not onnx_path.is_file():
            raise ArtifactError(f"{p}: no model.onnx")
        onnx_spec, arrays = read_onnx(onnx_path)
        if onnx_spec != spec:
            raise ArtifactError(f"{p}: the spec in model.onnx differs from manifest.json")
        return model_arrays(spec, arrays)
    if not p.exists():
        raise ArtifactError(f"{p}: no such file or directory")
    name = p.name
    if name.endswith(".onnx"):
        if (p.parent / "manifest.json").is_file():
            verify_hash(read_manifest(p.parent), p.parent, name)
        spec, arrays = read_onnx(p)
        return model_arrays(spec, arrays)
    if name.endswith(".torchscript.pt") or name.endswith(".pt2"):
        try:
            from lenet.artifacts import load_artifact
        except ImportError as exc:
            raise ArtifactError(f"{p}: loading TorchScript/.pt2 needs lenet.artifacts and torch "
                                f"({exc}); load model.onnx or the artifact directory instead") from None
        try:
            art = load_artifact(p)
        except ArtifactError:
            raise
        except Exception as exc:
            raise ArtifactError(f"{p}: {type(exc).__name__}: {exc}") from None
        return model_arrays(as_spec(art.spec), art.state_dict)
    raise ArtifactError(f"{p}: expected an artifact directory, .onnx, .torchscript.pt or .pt2 file")
