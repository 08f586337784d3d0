"""model.torchscript.pt loads and runs from C++ libtorch: the libtorch inside the installed torch
wheel (its headers and shared libraries), so the libtorch claim in docs/usage.md is checked by every CI run.
Compiling against the torch headers takes about a minute; the program is unoptimized (-O0) since
only the compile time matters here."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import make_model, relative_error, run_export, write_checkpoint

pytestmark = pytest.mark.slow

# Reads the spec from _extra_files, runs a [7,1,S,S] batch of 0.5s and prints spec + scores.
PROGRAM = r"""
#include <torch/script.h>
#include <iostream>
int main(int argc, char** argv) {
  torch::jit::ExtraFilesMap extra{{"lenet.json", ""}};
  torch::jit::Module m = torch::jit::load(argv[1], torch::kCPU, extra);
  m.eval();
  int64_t size = std::stoll(argv[2]);
  torch::NoGradGuard no_grad;
  at::Tensor y = m.forward({torch::full({7, 1, size, size}, 0.5)}).toTensor().contiguous();
  std::cout << extra["lenet.json"] << "\n";
  const float* p = y.data_ptr<float>();
  for (int64_t i = 0; i < y.numel(); ++i) std::cout << p[i] << (i + 1 < y.numel() ? " " : "\n");
}
"""


def test_torchscript_runs_in_cpp_libtorch(tmp_path):
    model = make_model("lenet5", seed=3)
    rc, _, err = run_export(write_checkpoint(model, tmp_path / "ckpt.pt"), "--out", tmp_path / "art",
                            "--formats", "torchscript", "--no-verify")
    assert rc == 0, err
    root = Path(torch.__file__).parent
    (tmp_path / "load.cpp").write_text(PROGRAM)
    assert shutil.which("g++"), "g++ is needed (it builds lenet_ext too)"
    subprocess.run(["g++", "-std=c++20", "-O0", "load.cpp", "-o", "load",
                    f"-I{root / 'include'}", f"-I{root / 'include/torch/csrc/api/include'}",
                    f"-L{root / 'lib'}", "-ltorch", "-ltorch_cpu", "-lc10",
                    f"-Wl,-rpath,{root / 'lib'}"], cwd=tmp_path, check=True, timeout=900)
    size = model.spec.input_size
    proc = subprocess.run([str(tmp_path / "load"), str(tmp_path / "art/model.torchscript.pt"),
                           str(size)], capture_output=True, text=True, check=True, timeout=120)
    spec_line, scores_line = proc.stdout.strip().splitlines()
    assert json.loads(spec_line) == model.spec.to_dict()
    got = np.array(scores_line.split(), dtype=np.float32).reshape(7, -1)
    with torch.no_grad():
        ref = model(torch.full((7, 1, size, size), 0.5)).numpy()
    assert relative_error(got, ref) <= 1e-4
