"""Static SASS figures of the CUDA kernels, per kernel and architecture (no GPU needed).

    python tools/sass_stats.py [--arch 90 ...] [--loops] [--json FILE]

Compiles csrc/engine/cuda/fused_*.cu to cubins with the build's flags (nvcc -O3 -lineinfo, one
cubin per architecture of the CMake default list), takes registers / spills / shared memory from
ptxas and disassembles with nvdisasm (from the CUDA toolkit, or `pip install nvidia-cuda-nvdisasm`).

Every figure is a *static estimate*, not a measurement:
  * static instructions: the kernel's SASS size;
  * per image: each instruction is weighted by the trip counts of the loops around it (backward
    branches; the trip count is read from the `for` line in phases.h, with parameters resolved
    through the inlined call chain that -lineinfo records) and by the share of an if/else arm
    at a call site, times threads per block / images per block. Data-dependent bounds and branch
    shares take the lenet5 values in ASSUME (C3 fan-in 3.75, RBF head, 10 classes). Loops the
    compiler unrolled partially are counted once per trip of their backward branch, so the
    estimate can be low for such loops; latency, occupancy and memory stalls are not modelled.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CUDA_DIR = ROOT / "csrc" / "engine" / "cuda"
PHASES = CUDA_DIR / "phases.h"

# kernel sources; a kernel's (threads, images) per block come from kernel_shape.
KERNELS = ("fused_subsample", "fused_rbf")


def kernel_shape(mangled: str, consts: dict[str, float]) -> tuple[str, float, float] | None:
    """(label, threads per block, images per block) of a kernel instantiation, or None for the
    instantiations lenet5 never launches (ReLU; the 8-units-per-thread output layer for > 16
    classes)."""
    if "fused_subsample_kernel" in mangled:
        m = re.search(r"fused_subsample_kernelILi(\d+)E", mangled)
        if m and int(m.group(1)) != 0:  # phases.h kActTanhLike
            return None  # the ReLU instance (lenet-relu)
        return "fused_subsample", consts["kSubThreads"], consts["kSubImages"]
    m = re.search(r"fused_rbf_kernelILi(\d+)ELi(\d+)E", mangled)
    if m:
        out_u, images = int(m.group(1)), int(m.group(2))
        if out_u != 1:
            return None
        return f"fused_rbf<{images}>", images / 2 * consts["kHeadUnitGroups"], images
    if "fused_rbf_kernel" in mangled:  # one instantiation (before the 16-image tiles)
        return "fused_rbf", consts["kHeadThreads"], consts["kHeadImages"]
    return None

# Values the source cannot give (data-dependent), for the published LeNet-5 (lenet5 spec).
ASSUME = {
    "p.c3_fan_in[o]": 60 / 16,  # the C3 table's 60 connections over 16 maps
    "p.out_pad": 16,            # 10 classes, one unit per thread: one block of 16 columns
    "p.rbf": 1.0,               # RBF head
    "u0 + cols < p.out_pad": 0.0,  # one block of output columns
    "valid": 1.0,               # full tiles
}

# Template arguments the kernel files (outside phases.h) give: lenet5's output layer.
ASSUME_NAMES = {"OutU": 1}

FMA_OPS = {"FFMA", "FFMA2"}
FP_OPS = {"FFMA", "FFMA2", "FADD", "FMUL", "FMNMX", "FSETP", "FSEL", "FMUL2", "FADD2"}


# ---- tools --------------------------------------------------------------------------------------

def find_tool(name: str) -> str:
    """A CUDA binary from PATH, CUDA_HOME or a pip `nvidia-cuda-*` package."""
    hits = [shutil.which(name)]
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            hits.append(str(Path(home) / "bin" / name))
    for site in {sysconfig.get_paths()["purelib"], *sys.path}:
        hits += glob.glob(os.path.join(site, "nvidia", "*", "bin", name))
    for h in hits:
        if h and os.access(h, os.X_OK):
            return h
    raise SystemExit(f"sass_stats: {name} not found (install the CUDA toolkit, or "
                     f"`pip install nvidia-cuda-{name}`)")


def default_archs() -> list[str]:
    """The architecture list CMakeLists.txt builds by default (one home for it)."""
    text = (ROOT / "CMakeLists.txt").read_text()
    m = re.search(r'set\(CMAKE_CUDA_ARCHITECTURES "([^"]+)"\)', text)
    if not m:
        raise SystemExit("sass_stats: no default CMAKE_CUDA_ARCHITECTURES in CMakeLists.txt")
    return [a.split("-")[0] for a in m.group(1).split(";")]


# ---- phases.h: constants, functions and their parameters ---------------------------------------

@dataclass
class Func:
    name: str
    first: int  # 1-based line numbers of the definition
    last: int
    params: list[str]
    tparams: list[str]


@dataclass
class Source:
    lines: list[str]
    consts: dict[str, float]
    funcs: list[Func]

    def func_at(self, line: int) -> Func | None:
        for f in self.funcs:
            if f.first <= line <= f.last:
                return f
        return None


def _split_args(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([<{":
            depth += 1
        elif ch in ")]>}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _balanced(text: str, start: int, open_ch: str, close_ch: str) -> str:
    """The text between text[start] == open_ch and its matching close_ch."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
    return text[start + 1:]


def parse_source(path: Path) -> Source:
    lines = path.read_text().splitlines()
    consts: dict[str, float] = {}
    for line in lines:
        m = re.search(r"constexpr int (.+?);", line)
        if m:
            for decl in _split_args(m.group(1)):
                name, _, expr = decl.partition("=")
                try:
                    consts[name.strip()] = eval(expr, {}, dict(consts))  # noqa: S307 (our header)
                except (NameError, SyntaxError):
                    pass
    funcs: list[Func] = []
    head = re.compile(r"^(?:LENET_HD|__device__|inline)\b.*?\b(\w+)\s*\(")
    for i, line in enumerate(lines):
        m = head.match(line)
        if not m:
            continue
        text = "\n".join(lines[i:i + 4])
        sig = _balanced(text, text.index("(", m.start(1)), "(", ")")
        params = [re.findall(r"\w+", a)[-1] for a in _split_args(sig) if re.findall(r"\w+", a)]
        tparams: list[str] = []
        if i > 0 and lines[i - 1].startswith("template <"):
            tparams = [a.split()[-1] for a in _split_args(lines[i - 1][len("template <"):-1])]
        funcs.append(Func(m.group(1), i + 1, len(lines), params, tparams))
    for a, b in zip(funcs, funcs[1:]):
        a.last = b.first - 2
    return Source(lines, consts, funcs)


# ---- SASS --------------------------------------------------------------------------------------

@dataclass
class Instr:
    addr: int
    text: str
    op: str
    chain: list[tuple[str, int]]  # (file, line), innermost first
    target: str | None = None
    weight: float = 1.0


@dataclass
class Kernel:
    name: str
    arch: str
    regs: int = 0
    spill_stores: int = 0
    spill_loads: int = 0
    stack: int = 0
    smem: int = 0
    instrs: list[Instr] = field(default_factory=list)
    loops: list[dict] = field(default_factory=list)


_INSTR = re.compile(r"/\*([0-9a-f]+)\*/\s+(.*?)\s*;")
_LOC = re.compile(r'//## File "([^"]+)", line (\d+)')
_LABEL = re.compile(r"^\s*(\.L_x_\d+):")


def parse_sass(text: str) -> tuple[list[Instr], dict[str, int]]:
    instrs: list[Instr] = []
    labels: dict[str, int] = {}
    open_labels: list[str] = []
    chain: list[tuple[str, int]] = []
    in_block = False
    for line in text.splitlines():
        m = _LABEL.match(line)
        if m:
            open_labels.append(m.group(1))
            continue
        if "//##" in line:
            if not in_block:
                chain, in_block = [], True
            f, ln = _LOC.findall(line)[0]
            chain.append((f, int(ln)))
            continue
        m = _INSTR.search(line)
        if not m:
            continue
        in_block = False
        addr = int(m.group(1), 16)
        for lab in open_labels:
            labels[lab] = addr
        open_labels = []
        body = re.sub(r"^@!?U?P\w+\s+", "", m.group(2))
        op = body.split()[0].split(".")[0]
        t = re.search(r"`\((\.L_x_\d+)\)", body)
        instrs.append(Instr(addr, m.group(2), op, list(chain), t.group(1) if t and op == "BRA" else None))
    return instrs, labels


class Estimator:
    """Trip counts of loops and shares of if/else arms, read from phases.h."""

    def __init__(self, src: Source) -> None:
        self.src = src

    def _frames(self, chain: list[tuple[str, int]]) -> list[int]:
        return [ln for f, ln in chain if f.endswith("phases.h")]

    def value(self, expr: str, frames: list[int], k: int) -> float:
        """Evaluates expr as written at phases.h line frames[k]."""
        expr = expr.strip()
        for key, v in ASSUME.items():
            expr = expr.replace(key, repr(v))
        names = dict(self.src.consts)
        for name in set(re.findall(r"\b[A-Za-z_]\w*\b", expr)):
            if name in names:
                continue
            names[name] = self.resolve(name, frames, k)
        return float(eval(expr, {}, names))  # noqa: S307 (our header's expressions)

    def resolve(self, name: str, frames: list[int], k: int) -> float:
        f = self.src.func_at(frames[k])
        if f is None:
            raise KeyError(name)
        for line in self.src.lines[f.first - 1:f.last]:  # a local constant of the function
            d = re.search(rf"(?:constexpr|const) int {name} = (.+?);", line)
            if d:
                return self.value(d.group(1), frames, k)
        # a (template) parameter: its argument at the call site, the first frame outside f (a
        # phase lambda and its ex.phase call are frames of the same function)
        for j in range(k + 1, len(frames)):
            if self.src.func_at(frames[j]) is f:
                continue
            call = self.src.lines[frames[j] - 1]
            m = re.search(rf"\b{f.name}\s*(<[^()]*>)?\s*\(", call)
            if not m:
                break
            if name in f.params:
                args = _split_args(_balanced(call, m.end() - 1, "(", ")"))
                return self.value(args[f.params.index(name)], frames, j)
            if name in f.tparams and m.group(1):
                args = _split_args(m.group(1)[1:-1])
                return self.value(args[f.tparams.index(name)], frames, j)
            break
        if name in ASSUME_NAMES:
            return ASSUME_NAMES[name]
        raise KeyError(name)

    def trips(self, chain: list[tuple[str, int]], body: list[Instr]) -> tuple[float | None, int]:
        """Trips per thread of the source loop whose backward branch has this chain, and the
        factor the compiler unrolled it by (one pass of the SASS body = that many trips)."""
        frames = self._frames(chain)
        if not frames:
            return None, 1
        line = self.src.lines[frames[0] - 1]
        m = re.search(r"for \(int (\w+) = ([^;]+); \1 < ([^;]+); (?:\+\+\1|\1 \+= ([^,)]+))[^)]*\)",
                      line)
        if not m:
            return None, 1
        try:
            bound = self.value(m.group(3), frames, 0)
            step = self.value(m.group(4), frames, 0) if m.group(4) else 1.0
            start = 0.0 if m.group(2).strip() == "tid" else self.value(m.group(2), frames, 0)
        except (KeyError, NameError, SyntaxError, ZeroDivisionError):
            return None, 1
        return max(bound - start, 0.0) / step, unroll_factor(body, frames[0], step)

    def arm_share(self, chain: list[tuple[str, int]]) -> float:
        """Product over the call sites of the share of the if/else arms they sit in."""
        share = 1.0
        for ln in self._frames(chain)[1:]:
            share *= self._line_share(ln)
        return share

    def _line_share(self, ln: int) -> float:
        lines = self.src.lines
        text = lines[ln - 1]
        share = 1.0
        if m := _INLINE_IF.match(text):  # `if (cond) call(...);`
            share *= self._prob(m.group(1), has_else=False)
        indent = _indent(text)
        f = self.src.func_at(ln)
        for j in range(ln - 1, (f.first if f else 1) - 1, -1):  # the enclosing lines, outwards
            t = lines[j - 1]
            if not t.strip() or _indent(t) >= indent:
                continue
            indent = _indent(t)
            share *= self._arm(j)
        return share

    def _arm(self, j: int) -> float:
        """Share of executions that take the arm headed by line j (1 if j heads no arm)."""
        lines = self.src.lines
        t = lines[j - 1]
        m, e = _IF.match(t), _ELSE.match(t)
        if not (m or e) or (m and m.group(2)):  # not an arm, or `if constexpr` (one instance)
            return 1.0
        ind = _indent(t)
        # the chain: headers at this indentation above j, up to its plain `if`
        conds: list[str] = []
        k = j
        while m is None or m.group(1):  # an `else` or `else if` continues a chain above
            k -= 1
            while k > 0 and (not lines[k - 1].strip() or _indent(lines[k - 1]) > ind
                             or lines[k - 1].strip() == "}"):
                k -= 1
            m = _IF.match(lines[k - 1]) if k > 0 else None
            if m is None:
                return 1.0
            conds.insert(0, m.group(3))
        has_else = bool(conds) or bool(e)
        for x in lines[j:j + 40]:  # an else arm further down, before the block closes
            if x.strip() and _indent(x) < ind:
                break
            if _indent(x) == ind and (_ELSE.match(x) or (_IF.match(x) and _IF.match(x).group(1))):
                has_else = True
                break
        share = 1.0
        for c in conds:  # the conditions before this arm were false
            share *= 1.0 - self._prob(c, has_else)
        if m := _IF.match(t):
            share *= self._prob(m.group(3), has_else)
        return share

    def _prob(self, cond: str, has_else: bool) -> float:
        """P(cond) where it is tested: ASSUME, else 0.5 between two arms, else 1 (an upper bound)."""
        cond = cond.strip()
        if cond in ASSUME:
            return ASSUME[cond]
        return 0.5 if has_else else 1.0


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


_IF = re.compile(r"^\s*(?:\}\s*)?(else\s+)?if (constexpr )?\((.+)\)\s*\{?\s*(?://.*)?$")
_ELSE = re.compile(r"^\s*(?:\}\s*)?else\s*\{?\s*(?://.*)?$")
_INLINE_IF = re.compile(r"^\s*if \((.+?)\) [a-z_]\w*[<(]")


def analyse(kernel: Kernel, labels: dict[str, int], est: Estimator) -> None:
    addr_index = {ins.addr: i for i, ins in enumerate(kernel.instrs)}
    for i, ins in enumerate(kernel.instrs):
        if ins.target is None or labels[ins.target] >= ins.addr:  # (a self-loop: the exit trap)
            continue
        start = addr_index[labels[ins.target]]
        body = kernel.instrs[start:i + 1]
        trips, unroll = est.trips(ins.chain, body)
        if trips is not None:
            trips /= unroll
        f = est.src.func_at(est._frames(ins.chain)[0]) if est._frames(ins.chain) else None
        kernel.loops.append({
            "function": f.name if f else "?",
            "line": est._frames(ins.chain)[0] if est._frames(ins.chain) else 0,
            "trips": trips, "unroll": unroll, "start": start, "end": i,
            "instructions": len(body), **mix(body),
        })
        for ins2 in body:
            ins2.weight *= trips if trips is not None else 1.0
    # Versions of one loop (the compiler's unswitching, e.g. on uint8 vs float input): disjoint
    # loops with the same call chain share its trips equally.
    groups: dict[tuple, list[dict]] = {}
    for lp in kernel.loops:
        chain = tuple(kernel.instrs[lp["end"]].chain)
        groups.setdefault(chain, []).append(lp)
    for versions in groups.values():
        disjoint = [lp for lp in versions
                    if not any(o is not lp and o["start"] <= lp["start"] and lp["end"] <= o["end"]
                               for o in versions)]
        if len(disjoint) > 1:
            for lp in disjoint:
                lp["versions"] = len(disjoint)
                for ins in kernel.instrs[lp["start"]:lp["end"] + 1]:
                    ins.weight /= len(disjoint)
    for ins in kernel.instrs:
        ins.weight *= est.arm_share(ins.chain)


def unroll_factor(body: list[Instr], for_line: int, step: float) -> int:
    """How many source trips one pass of a thread-strided loop body does (`idx += kThreads`; the
    compiler unrolls those by 2-4): its counter's in-place increment on the `for` line is
    k * step (a byte pointer beside it steps 4 k * step, hence the smallest). Short loops
    (step < 32) are taken as not unrolled: their increments cannot tell elements from bytes."""
    if step < 32:
        return 1
    ks = []
    for ins in body:
        lines = [ln for f, ln in ins.chain if f.endswith("phases.h")]
        if not lines or lines[0] != for_line or ins.op not in ("IADD3", "VIADD", "IADD", "IMAD"):
            continue
        for _, imm in re.findall(r"\s(R\d+), \1, (0x[0-9a-f]+|\d+)\b", ins.text):
            v = int(imm, 0)
            if v % step == 0 and 1 <= v // step <= 16:
                ks.append(int(v // step))
    return min(ks) if ks else 1


def mix(instrs: list[Instr], weighted: bool = False) -> dict[str, float]:
    w = (lambda i: i.weight) if weighted else (lambda i: 1.0)
    total = sum(w(i) for i in instrs) or 1.0
    fma = sum(w(i) for i in instrs if i.op in FMA_OPS)
    return {
        "ffma": fma,
        "fma_share": fma / total,
        "mufu": sum(w(i) for i in instrs if i.op == "MUFU"),
        "branches": sum(w(i) for i in instrs if i.op in ("BRA", "BRX", "JMP")),
        "shared_loads": sum(w(i) for i in instrs if i.op in ("LDS", "LDSM")),
        "global_loads": sum(w(i) for i in instrs if i.op in ("LDG", "LDGSTS")),
    }


def in_squash(ins: Instr, src: Source) -> bool:
    """Instructions of the squashing function, or of math-library code inlined into it."""
    for f, ln in ins.chain:
        if f.endswith("phases.h"):
            fn = src.func_at(ln)
            return fn is not None and fn.name in ("squash", "squash_as", "tanh_approx")
    return False


# ---- driver -----------------------------------------------------------------------------------

def compile_kernels(name: str, arch: str, tmp: Path, nvcc: str,
                    nvdisasm: str) -> list[tuple[Kernel, str]]:
    """Every kernel instantiation of one source: its ptxas resources and its SASS text."""
    cubin = tmp / f"{name}.sm_{arch}.cubin"
    cmd = [nvcc, "-std=c++17", "-O3", "-lineinfo", f"-I{ROOT / 'csrc'}", f"-arch=sm_{arch}",
           "-cubin", "-Xptxas", "-v", "-o", str(cubin), str(CUDA_DIR / f"{name}.cu")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"sass_stats: nvcc failed for {name} sm_{arch}:\n{r.stderr}")
    resources: dict[str, Kernel] = {}
    for block in re.split(r"Compiling entry function '", r.stderr + r.stdout)[1:]:
        mangled = block.split("'")[0]
        k = Kernel(mangled, arch)
        if m := re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", block):
            k.stack, k.spill_stores, k.spill_loads = map(int, m.groups())
        if m := re.search(r"Used (\d+) registers", block):
            k.regs = int(m.group(1))
        if m := re.search(r"(\d+) bytes smem", block):
            k.smem = int(m.group(1))
        resources[mangled] = k
    sass = subprocess.run([nvdisasm, "-gi", "-c", str(cubin)], capture_output=True, text=True,
                          check=True).stdout
    out = []
    for part in re.split(r"^//-+ \.text\.", sass, flags=re.M)[1:]:
        mangled = part.split()[0]
        if mangled in resources:
            out.append((resources[mangled], part))
    return out


def kernel_figures(k: Kernel, label: str, threads: float, images: float, src: Source) -> dict:
    per_image = threads / images
    dyn = sum(i.weight for i in k.instrs) * per_image
    wmix = mix(k.instrs, weighted=True)
    squash = sum(i.weight for i in k.instrs if in_squash(i, src)) * per_image
    return {
        "kernel": label, "arch": f"sm_{k.arch}", "registers": k.regs,
        "spill_bytes": k.spill_stores + k.spill_loads, "stack_bytes": k.stack, "smem_bytes": k.smem,
        "static_instructions": len(k.instrs), "static_ffma": mix(k.instrs)["ffma"],
        "static_mufu": mix(k.instrs)["mufu"], "static_branches": mix(k.instrs)["branches"],
        "unknown_trips": sum(1 for lp in k.loops if lp["trips"] is None),
        "instructions_per_image": round(dyn),
        "ffma_per_image": round(wmix["ffma"] * per_image),
        "fma_share": round(wmix["fma_share"], 3),
        "mufu_per_image": round(wmix["mufu"] * per_image),
        "branches_per_image": round(wmix["branches"] * per_image),
        "squash_share": round(squash / dyn, 3) if dyn else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", nargs="+", help="e.g. 80 90 (default: CMakeLists.txt's list)")
    ap.add_argument("--loops", action="store_true", help="also list every loop body")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args(argv)
    nvcc, nvdisasm = find_tool("nvcc"), find_tool("nvdisasm")
    src = parse_source(PHASES)
    est = Estimator(src)
    rows = []
    hdr = (f"{'kernel':16s} {'arch':7s} {'regs':>4s} {'spill':>5s} {'smem B':>7s} {'static':>6s} "
           f"{'instr/img':>9s} {'FFMA/img':>8s} {'FMA %':>5s} {'MUFU/img':>8s} {'BRA/img':>7s} "
           f"{'squash %':>8s}")
    print("static SASS estimates (not measurements); per-image figures weight each instruction by "
          "its loop trip counts (*: a loop whose trip count was not found counts once)")
    print(hdr)
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.arch or default_archs():
            for name in KERNELS:
                for k, sass in compile_kernels(name, arch, Path(tmp), nvcc, nvdisasm):
                    shape = kernel_shape(k.name, src.consts)
                    if shape is None:
                        continue
                    label, threads, images = shape
                    k.instrs, labels = parse_sass(sass)
                    analyse(k, labels, est)
                    fig = kernel_figures(k, label, threads, images, src)
                    rows.append(fig | ({"loops": k.loops} if args.loops else {}))
                    print(f"{label:16s} {fig['arch']:7s} {k.regs:4d} {fig['spill_bytes']:5d} "
                          f"{k.smem:7d} {len(k.instrs):6d} "
                          f"{fig['instructions_per_image']:8d}{'*' if fig['unknown_trips'] else ' '} "
                          f"{fig['ffma_per_image']:8d} {100 * fig['fma_share']:5.1f} "
                          f"{fig['mufu_per_image']:8d} {fig['branches_per_image']:7d} "
                          f"{100 * fig['squash_share']:8.1f}")
                    if args.loops:
                        for lp in k.loops:
                            trips = "?" if lp["trips"] is None else f"{lp['trips']:.2f}"
                            print(f"    loop {lp['function']}:{lp['line']} passes/thread {trips} "
                                  f"(unrolled x{lp['unroll']}, {lp.get('versions', 1)} versions): "
                                  f"{lp['instructions']} instr, {lp['ffma']:.0f} FFMA, "
                                  f"{lp['mufu']:.0f} MUFU, {lp['branches']:.0f} BRA, "
                                  f"{lp['shared_loads']:.0f} LDS")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
