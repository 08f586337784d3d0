"""The reader's layout: the runtime reader (lenet.digits) never imports the application
(lenet.digits.app) or the kit that makes and judges its model (lenet.digits.kit), the application
does not need the kit, and no lenet.digits modules import each other in a cycle. Read from the
source with ast (what a module *can* import, on every path), not from what one run imported; and
the old module paths still work for one release, with a DeprecationWarning."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import lenet.digits

PACKAGE = "lenet.digits"
ROOT = Path(lenet.digits.__file__).resolve().parent
APP, KIT = f"{PACKAGE}.app", f"{PACKAGE}.kit"
# Old paths kept for one release: each only forwards to the module's new place.
MOVED = {f"{PACKAGE}.synth": f"{KIT}.synth"}


def module_names() -> dict[str, Path]:
    names = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join((PACKAGE, *parts))] = path
    return names


def imported(name: str, path: Path) -> set[str]:
    """Every lenet.digits name that ``path`` imports anywhere (functions and TYPE_CHECKING blocks
    too), relative imports resolved: modules, and the module that holds each imported name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}  # from . import fonts
    return {n for n in found if n == PACKAGE or n.startswith(PACKAGE + ".")}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """Module -> the lenet.digits modules it imports (a name imported from a module counts as that
    module; importing a module also runs its packages' __init__)."""
    modules = module_names()
    edges = {}
    for name, path in modules.items():
        targets = set()
        for n in imported(name, path):
            while n not in modules:
                n = n.rpartition(".")[0]
            targets.add(n)
            parent = n.rpartition(".")[0]
            while parent.startswith(PACKAGE):
                targets.add(parent)
                parent = parent.rpartition(".")[0]
        edges[name] = targets - {name}
    return edges


def test_the_graph_is_read(graph):
    # The rules below pass vacuously on an empty graph: these edges are known to exist.
    assert f"{PACKAGE}.segment" in graph[f"{PACKAGE}.reader"]
    assert f"{PACKAGE}.decide" in graph[f"{PACKAGE}.reader"]
    assert f"{PACKAGE}.reader" in graph[f"{APP}.cli"]
    assert f"{APP}.live" in graph[f"{APP}.cli"]
    assert f"{KIT}.fonts" in graph[f"{KIT}.training_data"]  # from . import fonts
    assert f"{PACKAGE}.normalize" in graph[f"{KIT}.training_data"]


def test_the_runtime_reader_imports_neither_the_app_nor_the_kit(graph):
    runtime = [m for m in graph if not m.startswith((APP, KIT)) and m not in MOVED]
    assert f"{PACKAGE}.reader" in runtime and f"{PACKAGE}.render" in runtime
    bad = {m: sorted(t for t in graph[m] if t.startswith((APP, KIT))) for m in runtime}
    assert not {m: t for m, t in bad.items() if t}


def test_the_app_does_not_need_the_kit(graph):
    # lenet-digits runs with the runtime reader alone: the kit (fonts, MNIST, training data) is
    # for making and judging the model.
    bad = {m: sorted(t for t in graph[m] if t.startswith(KIT)) for m in graph if m.startswith(APP)}
    assert not {m: t for m, t in bad.items() if t}


def test_no_import_cycles(graph):
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_an_old_path_forwards_with_a_warning(monkeypatch, old, new):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    # ... and as a command: python -m OLD runs NEW's main(), saying where it moved.
    run = subprocess.run([sys.executable, "-m", old, "--help"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"python -m {new}" in run.stdout
    assert "DeprecationWarning" in run.stderr and new in run.stderr
