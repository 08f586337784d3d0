"""Checkpoints: written atomically, read with ``weights_only=True``, errors that name the file.

A checkpoint is a dict: ``format`` (``"lenet-checkpoint"``), ``version``, ``spec`` (the
architecture spec as a dict), ``model`` (state dict), ``optimizer``, ``scheduler``, ``epoch``
(completed epochs), ``rng`` (CPU/CUDA/numpy/python generator states), ``metrics`` (list of
per-epoch dicts), ``best_accuracy``, ``args``.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .messages import first_line
from .models import LeNet
from .paths import atomic_write_bytes, missing_reason
from .spec import ArchSpec, SpecError

FORMAT = "lenet-checkpoint"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, corrupt, foreign or unusable."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (no pickled code runs); raise CheckpointError naming the file."""
    path = Path(path)
    if not path.exists():
        reason = missing_reason(path)
        raise CheckpointError(f"{path}: " + ("no such checkpoint file" if reason == "no such file"
                                             else reason))
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    # torch.save writes a zip archive; checking it first (including every member's CRC, which
    # torch.load does not) tells a truncated or bit-flipped file apart from a hostile pickle.
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint (not a readable zip archive: {exc})") from None
    if damaged is not None:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint (checksum mismatch in {damaged})")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        blocked = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line]
        reason = blocked[0] if blocked else "it holds objects other than tensors and plain data"
        raise CheckpointError(f"{path}: refused to load: loading it would run code from the file "
                              f"({reason})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint "
                              f"({first_line(exc, type(exc).__name__)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a lenet checkpoint (no '{FORMAT}' format marker)")
    for key in ("spec", "model"):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint has no '{key}' entry")
    return state


def model_from_checkpoint(state: dict[str, Any], path: str | os.PathLike = "checkpoint") -> LeNet:
    """Rebuild the model a checkpoint describes and load its weights (eval mode, CPU)."""
    try:
        spec = ArchSpec.from_dict(state["spec"])
    except SpecError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    model = LeNet(spec)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the {spec.arch} spec: {first}") from None
    bad = [name for name, t in model.state_dict().items()
           if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise CheckpointError(f"{path}: non-finite (NaN/Inf) weights in {', '.join(bad)}")
    return model.eval()


def load_model(path: str | os.PathLike) -> tuple[LeNet, dict[str, Any]]:
    """Model (eval, CPU) and the raw checkpoint dict from a checkpoint file."""
    state = load_checkpoint(path)
    return model_from_checkpoint(state, path), state
