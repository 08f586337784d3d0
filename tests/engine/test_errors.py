"""Bad input and bad artifacts: a Python exception that names the problem, never a crash."""

from __future__ import annotations

import gc
import json
import shutil
import signal

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import lenet_ext
from lenet_ext import ArtifactError

from .conftest import assert_scores_close, make_model, normalize, reference_scores, write_artifact


@pytest.fixture(scope="module")
def engine():
    model = make_model("lenet5")
    return lenet_ext.from_state_dict(model.spec, model.state_dict())


@pytest.mark.parametrize("x, message", [
    (np.zeros((28, 28), np.uint8), "rank"),
    (np.zeros((2, 3, 28, 28, 1), np.uint8), "channel|rank"),
    (np.zeros((2, 3, 28, 28), np.uint8), "channel"),
    (np.zeros((2, 27, 28), np.uint8), "28x28"),
    (np.zeros((2, 30, 30), np.uint8), "28x28"),
    (np.zeros((2, 28, 28), np.float64), "dtype"),
    (np.zeros((2, 28, 28), np.int32), "dtype"),
    (np.zeros((2, 32, 32), np.float32), "rank"),
    (np.zeros((2, 2, 32, 32), np.float32), "channel"),
    (np.zeros((2, 1, 28, 28), np.float32), "32x32"),
    (np.zeros((3,), np.uint8), "rank"),
])
def test_bad_input_is_named(engine, x, message):
    with pytest.raises(ValueError, match=message):
        engine.scores(x)


@pytest.mark.parametrize("n", [1, 5, 16, 20, 37])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input(engine, n, bad):
    x = np.zeros((n, 1, 32, 32), np.float32)
    x[n - 1, 0, 7, 9] = bad
    with pytest.raises(ValueError, match=f"image {n - 1} contains NaN or Inf"):
        engine.scores(x)


@pytest.mark.parametrize("threads", [1, 2])
def test_first_non_finite_image_is_named(threads):
    """The first bad image is named whichever thread or part of the work meets it: here the
    lower rows of an image in a 16-image block that two threads share, and a later single image."""
    model = make_model("lenet5")
    engine = lenet_ext.from_state_dict(model.spec, model.state_dict(), threads=threads)
    x = np.zeros((21, 1, 32, 32), np.float32)
    x[3, 0, 28, 2] = np.nan
    x[19, 0, 1, 1] = np.inf
    with pytest.raises(ValueError, match="image 3 contains NaN or Inf"):
        engine.scores(x)


def test_cuda_tensor_or_device():
    model = make_model("lenet-relu")
    info = lenet_ext.build_info()
    if info["cuda_devices"] == 0:
        with pytest.raises(RuntimeError, match="CUDA"):
            lenet_ext.from_state_dict(model.spec, model.state_dict(), device="cuda")
    with pytest.raises(ValueError, match="device"):
        lenet_ext.from_state_dict(model.spec, model.state_dict(), device="tpu")
    for threads in (0, -1, 1.5, "2", True, 10**6):
        with pytest.raises(ValueError, match="threads"):
            lenet_ext.from_state_dict(model.spec, model.state_dict(), threads=threads)


def test_unknown_arch_and_wrong_shapes():
    model = make_model("lenet5")
    spec = model.spec.to_dict()
    state = model.state_dict()
    with pytest.raises(ValueError, match="unknown arch 'lenet7'"):
        lenet_ext.from_state_dict({**spec, "arch": "lenet7"}, state)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        lenet_ext.from_state_dict({**spec, "activation": "gelu"}, state)
    bad = dict(state)
    bad["c5.weight"] = torch.zeros(120, 16, 4, 4)
    with pytest.raises(ArtifactError, match=r"c5.weight.*\(120, 16, 4, 4\)"):
        lenet_ext.from_state_dict(spec, bad)
    missing = {k: v for k, v in state.items() if k != "f6.bias"}
    with pytest.raises(ArtifactError, match="missing weight 'f6.bias'"):
        lenet_ext.from_state_dict(spec, missing)
    nan = dict(state)
    nan["f6.bias"] = torch.full((84,), float("nan"))
    with pytest.raises(ArtifactError, match="NaN"):
        lenet_ext.from_state_dict(spec, nan)


def test_a_wider_member_of_the_family_is_refused_by_name(tmp_path):
    """lenet5-wide is a valid spec (PyTorch and ONNX Runtime run it), but the engine's kernels
    are written for LeNet-5's layer sizes: from weights or from an artifact, it says so by name
    rather than failing on a weight's shape."""
    model = make_model("lenet5-wide")
    with pytest.raises(ArtifactError, match="lenet_ext does not run 'lenet5-wide'.*ONNX Runtime"):
        lenet_ext.from_state_dict(model.spec, model.state_dict())
    art = write_artifact(model, tmp_path / "wide")
    for path in (art, art / "model.onnx"):
        with pytest.raises(ArtifactError, match="lenet_ext does not run 'lenet5-wide'"):
            lenet_ext.load(path)


# --- artifacts ---------------------------------------------------------------------------------

def test_artifact_dir_and_onnx(artifact_dir):
    model, path = artifact_dir
    x = np.random.default_rng(5).integers(0, 256, (19, 28, 28), dtype=np.uint8)
    ref = reference_scores(model, normalize(x, model.spec))
    for target in (path, path / "model.onnx", str(path)):
        engine = lenet_ext.load(target, threads=2)
        assert engine.spec == model.spec
        assert_scores_close(engine.scores(x), ref)


def test_torchscript_artifact(artifact_dir):
    model, path = artifact_dir
    x = np.random.default_rng(6).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    engine = lenet_ext.load(path / "model.torchscript.pt")
    assert_scores_close(engine.scores(x), reference_scores(model, normalize(x, model.spec)))


def copy_artifact(src, tmp_path):
    dst = tmp_path / "art"
    shutil.copytree(src, dst)
    return dst


def test_hash_mismatch_and_truncation(artifact_dir, tmp_path):
    _, src = artifact_dir
    d = copy_artifact(src, tmp_path)
    data = bytearray((d / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="modified since export .*sha256"):
        lenet_ext.load(d)
    (d / "model.onnx").write_bytes(bytes(data[:100]))
    with pytest.raises(ArtifactError, match="bytes.*truncated"):
        lenet_ext.load(d)
    with pytest.raises(ArtifactError, match="truncated"):
        lenet_ext.load(d / "model.onnx")


def test_bad_manifests(artifact_dir, tmp_path):
    _, src = artifact_dir
    d = copy_artifact(src, tmp_path)
    manifest = json.loads((d / "manifest.json").read_text())
    (d / "manifest.json").write_text(json.dumps({**manifest, "spec": {**manifest["spec"],
                                                                     "arch": "lenet9"}}))
    with pytest.raises(ArtifactError, match="unknown arch 'lenet9'"):
        lenet_ext.load(d)
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        lenet_ext.load(d)
    (d / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        lenet_ext.load(d)
    with pytest.raises(ArtifactError, match="no such file"):
        lenet_ext.load(tmp_path / "nothing.onnx")
    (d / "model.bin").write_bytes(b"\0" * 10)
    with pytest.raises(ArtifactError, match="expected an artifact directory"):
        lenet_ext.load(d / "model.bin")


def test_onnx_with_wrong_weight_shape(artifact_dir, tmp_path):
    import onnx
    from onnx import numpy_helper

    model, src = artifact_dir
    proto = onnx.load(str(src / "model.onnx"))
    for i, init in enumerate(proto.graph.initializer):
        if init.name == "fc6.weight":
            proto.graph.initializer[i].CopyFrom(
                numpy_helper.from_array(np.zeros((84, 119), np.float32), "fc6.weight"))
    onnx.save(proto, str(tmp_path / "m.onnx"))
    with pytest.raises(ArtifactError, match=r"fc6.weight.*does not match"):
        lenet_ext.load(tmp_path / "m.onnx")


# --- fuzzing -----------------------------------------------------------------------------------

DTYPES = [np.uint8, np.int8, np.uint16, np.float16, np.float32, np.float64, np.int64, np.bool_]


def input_problem(x: np.ndarray) -> str | None:
    """The engine's input rules (csrc/engine/input.cpp) written out again, independently: None for
    a batch the engine must accept, else a word its refusal must contain."""
    if x.dtype == np.uint8:
        if x.ndim == 4 and x.shape[1] != 1:
            return "channel"
        if x.ndim not in (3, 4):
            return "rank"
        return None if x.shape[-2:] in ((28, 28), (32, 32)) else "28x28"
    if x.dtype == np.float32:
        if x.ndim != 4:
            return "rank"
        if x.shape[1] != 1:
            return "channel"
        return None if x.shape[2:] == (32, 32) else "32x32"
    return "dtype"


# Sizes the rules care about, often, and any others.
DIMS = st.one_of(st.sampled_from([0, 1, 2, 28, 32]), st.integers(0, 40))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.lists(DIMS, min_size=0, max_size=5), dtype=st.sampled_from(DTYPES),
       step=st.integers(1, 3), swap=st.booleans())
@example(shape=[3, 28, 28], dtype=np.uint8, step=2, swap=True)
@example(shape=[5, 1, 32, 32], dtype=np.uint8, step=1, swap=False)
@example(shape=[4, 1, 32, 32], dtype=np.float32, step=3, swap=True)
@example(shape=[0, 28, 28], dtype=np.uint8, step=1, swap=False)
def test_fuzz_input_validation(engine, shape, dtype, step, swap):
    """A valid batch (any strides) is scored; an invalid one is refused with the rule it breaks."""
    size = int(np.prod(shape)) if shape else 1
    if size > 200_000:
        return
    x = np.zeros(shape, dtype)
    if x.ndim and x.shape[0]:
        x = x[::step]
        if swap and x.ndim >= 2:
            x = np.swapaxes(x, -1, -2)
    problem = input_problem(x)
    if problem is None:
        scores = engine.scores(x)
        assert scores.shape == (x.shape[0], 10) and np.isfinite(scores).all()
        if len(x):
            assert_scores_close(scores, engine.scores(np.ascontiguousarray(x)), rtol=0)
    else:
        with pytest.raises(ValueError, match=problem):
            engine.scores(x)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 1.0), flip=st.integers(0, 10**9))
def test_fuzz_truncated_and_flipped_onnx(artifact_dir, tmp_path_factory, cut, flip):
    _, src = artifact_dir
    data = bytearray((src / "model.onnx").read_bytes())
    d = tmp_path_factory.mktemp("fuzz")
    data = data[:int(len(data) * cut)]
    if data:
        data[flip % len(data)] ^= 0x5A
    (d / "m.onnx").write_bytes(bytes(data))
    try:
        engine = lenet_ext.load(d / "m.onnx")
    except ArtifactError as exc:
        assert "m.onnx" in str(exc)  # the message names the file
        return
    # A flip that lands in a weight's value loads fine: the engine must still run.
    engine.scores(np.zeros((2, 28, 28), np.uint8))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64, torch.int32, torch.bool,
                                   torch.complex64])
def test_unsupported_torch_dtypes(engine, dtype):
    with pytest.raises(ValueError, match="dtype|cannot read"):
        engine.scores(torch.zeros(2, 1, 32, 32, dtype=dtype))


def test_ragged_list_input(engine):
    with pytest.raises(ValueError, match="cannot read input of type list"):
        engine.scores([[1, 2], [3]])


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_engine_survives_fork(engine):
    import os

    x = np.random.default_rng(3).integers(0, 256, (100, 28, 28), dtype=np.uint8)
    want = engine.scores(x)
    model = make_model("lenet5")
    state = {k: v.numpy() for k, v in model.state_dict().items()}  # no torch calls in the child
    doomed = lenet_ext.from_state_dict(model.spec, state, threads=3)
    doomed.scores(x)  # its workers have run and wait for the next batch
    pid = os.fork()
    if pid == 0:  # child: the pool's threads are gone; the engine must still answer
        code = 1
        try:
            signal.alarm(120)  # a hang (e.g. waiting on the parent's workers) fails, by SIGALRM
            ok = np.array_equal(engine.scores(x), want)
            del doomed  # destroying a pool whose threads are the parent's must not touch them
            gc.collect()
            # A pool made in the child has threads of its own.
            fresh = lenet_ext.from_state_dict(model.spec, state, threads=3)
            code = 0 if ok and np.array_equal(fresh.scores(x), want) else 1
        finally:
            os._exit(code)  # never return into pytest from the child
    del doomed
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # a signal gives a negative code


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["model.torchscript.pt", "manifest.json"]), cut=st.floats(0.0, 0.99))
def test_fuzz_truncated_torchscript_and_manifest(artifact_dir, tmp_path_factory, name, cut):
    """Truncated TorchScript files (no manifest to catch it) and truncated manifests."""
    _, src = artifact_dir
    d = tmp_path_factory.mktemp("fuzz-ts")
    data = (src / name).read_bytes()
    (d / name).write_bytes(data[:int(len(data) * cut)])
    if name == "manifest.json":
        (d / "model.onnx").write_bytes((src / "model.onnx").read_bytes())
        target = d
    else:
        target = d / name
    with pytest.raises(ArtifactError):
        lenet_ext.load(target)


def test_artifact_dir_loads_without_torch(artifact_dir):
    """The no-torch path: an artifact dir and every format's file load and run with torch never
    imported (the zip formats are read without torch, as well as without running their code)."""
    import subprocess
    import sys

    _, path = artifact_dir
    code = ("import sys, numpy as np, lenet_ext\n"
            f"e = lenet_ext.load({str(path)!r})\n"
            "e.scores(np.zeros((3, 28, 28), np.uint8))\n"
            f"for name in ('model.onnx', 'model.torchscript.pt', 'model.pt2'):\n"
            f"    lenet_ext.load({str(path)!r} + '/' + name).predict(np.zeros((1, 28, 28), np.uint8))\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
