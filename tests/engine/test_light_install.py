"""The engine's install without extras: numpy and onnx only, no torch, and it still loads and runs
an exported model (an artifact directory and each file lenet-export writes).

The wheel is built once per test run into build/light-install/ with its own CMake build directory
(incremental after the first time; CPU only, so it needs no nvcc and never reconfigures the
editable build), then installed into a fresh venv whose numpy and onnx come from pip's cache.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ..support import CLEAN_ENV, build_wheel, fresh_venv, installed, run
from .conftest import (assert_scores_close, make_model, normalize, reference_scores, run_export,
                       write_checkpoint)

# Runs inside the fresh venv: load every format, predict, and prove torch was never importable.
SCRIPT = r"""
import importlib.util, json, sys
import numpy as np
import lenet_ext
assert importlib.util.find_spec("torch") is None, "torch is installed in the light venv"
art, out = sys.argv[1], sys.argv[2]
x = np.load(out + "/images.npy")
for name in ("dir", "model.onnx", "model.torchscript.pt", "model.pt2"):
    path = art if name == "dir" else art + "/" + name
    engine = lenet_ext.load(path, threads=1)
    labels, scores = engine.predict(x)
    np.save(f"{out}/{name}-scores.npy", scores)
    np.save(f"{out}/{name}-labels.npy", labels)
assert "torch" not in sys.modules
print(json.dumps({"file": lenet_ext.__file__, "version": lenet_ext.__version__}))
"""


@pytest.mark.slow
def test_engine_without_extras(tmp_path):
    model = make_model("lenet5", seed=4)
    ckpt = write_checkpoint(model, tmp_path / "best.pt")
    rc, _, err = run_export(ckpt, "--out", tmp_path / "art", "--no-verify")  # every format
    assert rc == 0, err
    art = tmp_path / "art"
    x = np.random.default_rng(5).integers(0, 256, (23, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "images.npy", x)

    wheel = build_wheel()
    env_dir = tmp_path / "venv"
    py = fresh_venv(env_dir, wheel) / "python"
    names = installed(env_dir / "bin")
    assert "torch" not in names and "onnxruntime" not in names, sorted(names)

    # -I: no PYTHONPATH, no user site, no script directory; cwd outside the source tree.
    proc = run(py, "-I", "-c", SCRIPT, art, tmp_path, cwd=tmp_path)
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(info["file"]).is_relative_to(env_dir), info  # the installed copy, not the source
    # The commands need their extras: one line naming the install, not a traceback.
    for command, extra in (("lenet-train", "train"), ("lenet-export", "export"),
                           ("lenet-digits", "digits"), ("lenet-bench", "bench"),
                           ("python -m lenet_ext", "train")):
        argv = ([str(py), "-m", "lenet_ext", str(art)] if command.startswith("python")
                else [str(env_dir / "bin" / command), "--help"])
        proc = subprocess.run(argv, capture_output=True, text=True, env=CLEAN_ENV, cwd=tmp_path)
        assert proc.returncode == 2 and proc.stdout == "", (command, proc.stdout, proc.stderr)
        assert proc.stderr.count("\n") == 1 and f"pip install 'lenet[{extra}]'" in proc.stderr, proc.stderr
    ref = reference_scores(model, normalize(x, model.spec))
    for name in ("dir", "model.onnx", "model.torchscript.pt", "model.pt2"):
        scores = np.load(tmp_path / f"{name}-scores.npy")
        assert_scores_close(scores, ref)
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}-labels.npy"), ref.argmax(1))
