"""Pretrained weights shipped in the package, by name, as torchvision's ``weights=``.

Each is an artifact directory here (``NAME/manifest.json`` + ``NAME/model.onnx``, as
``lenet-export`` writes it), made by ``make pretrained`` (tools/pretrained.py), whose manifest
records the data, the recipe, the seed, the test error and the training time under
``"pretrained"``. Every loader accepts the name where it accepts an artifact path:

    lenet_ext.load("lenet5-mnist")                      # the engine, no torch needed
    build_model("lenet5", weights="mnist")              # PyTorch
    lenet-export lenet5-mnist --out DIR                 # every format, with the parity check

Reading them needs no torch (the ONNX file is read as protobuf; no code from it runs).
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def names() -> list[str]:
    """The pretrained names this installation ships, e.g. ``["lenet5-mnist"]``."""
    return sorted(p.name for p in HERE.iterdir() if (p / "manifest.json").is_file())


def looks_like_a_name(path: str | os.PathLike) -> bool:
    """A bare word such as ``lenet5-mnist`` (no folder, no file suffix), not a path."""
    text = os.fspath(path)
    return bool(text) and os.sep not in text and "/" not in text and "." not in text


def unknown(name: str) -> str:
    """The message for a pretrained name that does not exist: the names that do."""
    known = names()
    return (f"no pretrained weights named {name!r}; this installation ships: "
            f"{', '.join(known) if known else 'none'}")


def shipped(name: str) -> Path:
    """The shipped directory of a pretrained name; a ValueError listing the names that exist."""
    if name not in names():
        raise ValueError(unknown(name))
    return HERE / name


def resolve(path: str | os.PathLike) -> Path:
    """``path`` itself when it exists or is not a bare name; the shipped directory of a pretrained
    name otherwise (a path that exists always wins over a name)."""
    p = Path(path)
    if p.exists() or not looks_like_a_name(path) or os.fspath(path) not in names():
        return p
    return shipped(os.fspath(path))


def weights_name(arch: str, weights: str) -> str:
    """``build_model(arch, weights=...)``'s name: ``lenet5`` + ``mnist`` = ``lenet5-mnist``."""
    return f"{arch}-{weights}"
