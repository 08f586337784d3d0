"""Ship an exported model inside the package: model.onnx and a manifest that lists only it (the
other formats stay in the build; the ONNX file alone is loadable without torch), plus one
section of the recipe's own (``key``: its data, recipe and figures). Used by the reader model's
recipe (tools/reader_model.py) and the pretrained weights' (tools/pretrained.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


def ship(export_dir: Path, ship_dir: Path, key: str, info: dict) -> None:
    """Replace ``ship_dir`` with ``export_dir``'s model.onnx and manifest (+ ``info`` under
    ``key``), built beside it first so a failure leaves the old one whole."""
    manifest = json.loads((export_dir / "manifest.json").read_text())
    manifest["artifacts"] = {k: v for k, v in manifest["artifacts"].items() if k == "model.onnx"}
    manifest[key] = info
    tmp = ship_dir.with_name(ship_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy2(export_dir / "model.onnx", tmp / "model.onnx")
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    keep = ship_dir / "__init__.py"
    if keep.exists():
        shutil.copy2(keep, tmp / "__init__.py")
    shutil.rmtree(ship_dir, ignore_errors=True)
    os.replace(tmp, ship_dir)
