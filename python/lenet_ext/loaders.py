"""From an artifact (or a spec + state dict) to the arrays the C++ ``Model`` holds.

Reading, hash checks and weight validation are :mod:`lenet.artifacts`' job (one loader for the
whole product; an artifact directory or ``.onnx`` file is read without importing torch). What is
the engine's own is the layout: the LeCun C3 slots become a dense kernel plus a connection mask.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from lenet.artifacts import ArtifactError, check_weights, load_artifact, read_onnx
from lenet.spec import ENGINE_ARCHS, ArchSpec, c3_slot_positions

__all__ = ["ArtifactError", "as_spec", "load_arrays", "load_int8_arrays", "model_arrays", "read_onnx"]


def as_spec(spec: ArchSpec | Mapping[str, Any] | str | bytes) -> ArchSpec:
    if isinstance(spec, ArchSpec):
        return spec
    if isinstance(spec, (str, bytes)):
        return ArchSpec.from_json(spec)
    return ArchSpec.from_dict(dict(spec))


def model_arrays(spec: ArchSpec, state_dict: Mapping[str, Any]
                 ) -> tuple[dict[str, Any], dict[str, np.ndarray], np.ndarray]:
    """(spec dict, float32 weights in the engine's dense layout, C3 connection mask [16, 6])."""
    if spec.arch not in ENGINE_ARCHS:
        # Checked by name before the weights: their shapes would only say "wrong size".
        raise ArtifactError(f"lenet_ext does not run {spec.arch!r}: its kernels are written for "
                            f"LeNet-5's layer sizes ({', '.join(ENGINE_ARCHS)}); run it with "
                            "PyTorch or ONNX Runtime")
    weights = check_weights(spec, state_dict, spec.arch)
    if spec.c3_table == "lecun":
        dense = np.zeros((16, 6, 5, 5), np.float32)
        connected = np.zeros((16, 6), np.uint8)
        for slot, (out, i) in enumerate(c3_slot_positions()):
            dense[out, i] = weights["c3.weight"][slot]
            connected[out, i] = 1
        weights["c3.weight"] = dense
    else:
        connected = np.ones((16, 6), np.uint8)
    return spec.to_dict(), weights, connected


def load_arrays(path: str | os.PathLike[str]
                ) -> tuple[dict[str, Any], dict[str, np.ndarray], np.ndarray]:
    """Engine arrays from an artifact dir, ``.onnx``, ``.torchscript.pt`` or ``.pt2``."""
    art = load_artifact(path)
    return model_arrays(art.spec, art.state_dict)


def load_int8_arrays(path: str | os.PathLike[str]
                     ) -> tuple[dict[str, Any], dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    """:func:`load_arrays` plus the INT8 engine's arrays, from the manifest's ``int8`` block
    (written by ``lenet-export --precision int8``; every scale is checked by :mod:`lenet.quant`)."""
    from lenet.quant import engine_arrays

    art = load_artifact(path)
    if art.manifest is None:
        raise ArtifactError(f"{path}: precision='int8' needs an artifact directory whose manifest "
                            "holds int8 scales (lenet-export --precision int8); a bare model file "
                            "has none")
    quant = engine_arrays(art.spec, art.state_dict, art.manifest.get("int8"))
    return (*model_arrays(art.spec, art.state_dict), quant)
