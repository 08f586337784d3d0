"""The rule csrc/engine/cpu/vec.h states: the per-ISA kernel objects share no weak symbol. An inline
function (a std:: template, say) emitted weak by both the AVX-512 and the baseline object is one
function to the linker, which keeps either copy: the baseline path could then run AVX-512 code and
fault on an older CPU. Checked with nm on the object files of every build of this checkout."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ISAS = ("baseline", "avx2", "avx512")
WEAK = set("WVui")  # nm: weak (W, V), unique global (u), indirect function (i)


def defined_symbols(obj: Path) -> dict[str, str]:
    """name -> nm type letter. LTO objects are read through nm's LTO plugin."""
    out = subprocess.run(["nm", "--defined-only", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    return {parts[2]: parts[1] for parts in (line.split() for line in out.splitlines())
            if len(parts) == 3}


def weak_symbols(obj: Path) -> set[str]:
    return {name for name, kind in defined_symbols(obj).items() if kind in WEAK}


def shared_weak(objects: list[Path]) -> dict[tuple[str, str], set[str]]:
    syms = {o.name: weak_symbols(o) for o in objects}
    return {(a, b): syms[a] & syms[b] for a, b in itertools.combinations(syms, 2) if syms[a] & syms[b]}


def kernel_object_sets() -> list[list[Path]]:
    """Per build directory under build/, its per-ISA kernel objects."""
    sets = []
    for first in sorted(ROOT.glob("build/**/kernels_baseline.cpp.o")):
        objs = [first.with_name(f"kernels_{isa}.cpp.o") for isa in ISAS]
        sets.append([o for o in objs if o.exists()])
    return sets


@pytest.fixture(scope="module")
def nm():
    assert shutil.which("nm"), "nm (binutils) is needed to check the kernel objects"


def test_isa_objects_share_no_weak_symbol(nm):
    sets = kernel_object_sets()
    assert sets, f"no kernel objects under {ROOT / 'build'}: build the extension first (make build)"
    for objects in sets:
        for obj in objects:  # nm really read it (an LTO object without the plugin lists nothing)
            isa = obj.name.removeprefix("kernels_").removesuffix(".cpp.o")
            assert f"_ZN5lenet3cpu{len('kernels_' + isa)}kernels_{isa}Ev" in defined_symbols(obj), obj
        clashes = shared_weak(objects)
        assert not clashes, f"{objects[0].parent}: weak symbols in more than one ISA object: {clashes}"


def test_the_check_sees_a_shared_inline_function(nm, tmp_path):
    """The check itself: two units that instantiate the same inline template share a weak symbol."""
    src = "#include <algorithm>\nfloat f{n}(float a, float b) {{ return std::max(a, b) + {n}; }}\n"
    for n in (1, 2):
        (tmp_path / f"u{n}.cpp").write_text(src.format(n=n))
        subprocess.run(["c++", "-O0", "-c", f"u{n}.cpp", "-o", f"u{n}.o"], cwd=tmp_path, check=True)
    clashes = shared_weak([tmp_path / "u1.o", tmp_path / "u2.o"])
    assert clashes and any("max" in s for s in clashes[("u1.o", "u2.o")])
