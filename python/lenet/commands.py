"""The console commands, each behind a check that its extra is installed.

``pip install lenet`` alone brings only the engine's dependencies (numpy, onnx); each command
needs an extra (pyproject.toml). Without it, the command says in one line which distributions are
missing and the ``pip install`` that brings them, instead of an ImportError traceback. Which
distributions an extra holds is read from the installed package's metadata, so pyproject.toml
stays the only list.
"""

from __future__ import annotations

import importlib
import re
import sys
from importlib import metadata

# command -> (module with main(), the extra it needs)
COMMANDS = {
    "lenet-train": ("lenet.train", "train"),
    "lenet-summary": ("lenet.summary", "train"),
    "lenet-export": ("lenet.export", "export"),
    "lenet-bench": ("lenet.bench", "bench"),
    "lenet-digits": ("lenet.digits.app.cli", "digits"),
    "lenet-serve": ("lenet.serve.cli", "serve"),
}

_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def extra_requirements(extra: str) -> list[str]:
    """Distribution names the installed ``lenet`` lists for ``extra``."""
    names = []
    for req in metadata.requires("lenet") or []:
        spec, _, marker = req.partition(";")
        m = _EXTRA_MARKER.search(marker)
        if m and m.group(1) == extra:
            names.append(_NAME.match(spec.strip()).group(0))
    return names


def missing(extra: str) -> list[str]:
    out = []
    for name in extra_requirements(extra):
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


def has_extra(command: str, extra: str) -> bool:
    """True when ``extra`` is installed; else says so in one line on stderr, naming ``command``."""
    try:
        absent = missing(extra)
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return True
    if absent:
        print(f"{command}: needs {', '.join(absent)} (the [{extra}] extra): "
              f"pip install 'lenet[{extra}]'", file=sys.stderr)
    return not absent


def run(command: str) -> int:
    module, extra = COMMANDS[command]
    if not has_extra(command, extra):
        return 2
    return importlib.import_module(module).main()


def train() -> int:
    return run("lenet-train")


def summary() -> int:
    return run("lenet-summary")


def export() -> int:
    return run("lenet-export")


def bench() -> int:
    return run("lenet-bench")


def digits() -> int:
    return run("lenet-digits")


def serve() -> int:
    return run("lenet-serve")
