"""The CUDA kernels' logic, proven on the CPU: the host emulator runs the kernels' own phase
programs (csrc/engine/cuda/phases.h) over every (block, thread) with the GPU's launch
configuration and must match the CPU backend (≤ 1e-5 relative) and PyTorch float64."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import lenet_ext
from lenet.models import build_model
from lenet_ext import _core
from lenet_ext.loaders import model_arrays

from .conftest import assert_scores_close, make_model, normalize, reference_scores

RNG = np.random.default_rng(2026)
IMAGES = RNG.integers(0, 256, (140, 28, 28), dtype=np.uint8)
IMAGES[::3] = np.where(RNG.random((len(IMAGES[::3]), 28, 28)) < 0.8, 0, 255)  # sparse strokes
# Odd sizes around both kernels' tiles (4 images per subsampling block, 32 per head block).
SIZES = [1, 2, 3, 5, 31, 33, 67, 140]


def emulate(model, x, reverse: bool = False, chunk: int = 0, head_images: int = 32) -> np.ndarray:
    spec_dict, weights, connected = model_arrays(model.spec, model.state_dict())
    return _core.emulate_cuda_scores(spec_dict, weights, connected, np.ascontiguousarray(x),
                                     reverse=reverse, chunk=chunk, head_images=head_images)


@pytest.fixture(scope="module")
def setup(arch):
    model = make_model(arch, seed=3)
    cpu = lenet_ext.from_state_dict(model.spec, model.state_dict())
    ref = reference_scores(model, normalize(IMAGES, model.spec))
    return model, cpu, ref


@pytest.mark.parametrize("head_images", [32, 16])
@pytest.mark.parametrize("n", SIZES)
def test_uint8_matches_cpu_and_float64(setup, n, head_images):
    """Both head tiles (32 images; 16 when the batch would not fill the GPU)."""
    model, cpu, ref = setup
    got = emulate(model, IMAGES[:n], head_images=head_images)
    assert_scores_close(got, cpu.scores(IMAGES[:n]).astype(np.float64), rtol=1e-5)
    assert_scores_close(got, ref[:n], rtol=1e-5)


@pytest.mark.parametrize("n", [1, 6, 37])
def test_float_input_matches(setup, n):
    model, cpu, ref = setup
    x = normalize(IMAGES[:n], model.spec).astype(np.float32)
    got = emulate(model, x)
    assert_scores_close(got, cpu.scores(x).astype(np.float64), rtol=1e-5)
    assert_scores_close(got, ref[:n], rtol=1e-5)


def test_uint8_at_model_input_size(setup):
    model, cpu, _ = setup
    size = model.spec.input_size
    raw = RNG.integers(0, 256, (9, size, size), dtype=np.uint8)
    got = emulate(model, raw)
    assert_scores_close(got, cpu.scores(raw).astype(np.float64), rtol=1e-5)
    assert_scores_close(got, reference_scores(model, normalize(raw, model.spec)), rtol=1e-5)


def test_squash_tanh_against_float64():
    """The kernels' branch-free tanh (phases.h tanh_approx) over every 64th float32 in [0, 9.5]
    (17M values) and the special values: within 1e-6 relative of float64 tanh, exactly odd."""
    top = np.float32(9.5).view(np.int32)
    x = np.arange(0, top, 64, dtype=np.int32).view(np.float32)
    got = _core.cuda_tanh_approx(x)
    ref = np.tanh(x.astype(np.float64))
    # relative to |tanh x|, floored at the smallest normal float (subnormals carry fewer bits)
    rel = np.abs(got - ref) / np.maximum(np.abs(ref), np.finfo(np.float32).tiny)
    assert rel.max() <= 1e-6, f"max relative error {rel.max():.2e} at x = {x[rel.argmax()]!r}"
    assert np.array_equal(_core.cuda_tanh_approx(-x), -got)
    special = _core.cuda_tanh_approx(np.array([np.inf, -np.inf, np.nan, 0.0, -0.0], np.float32))
    assert abs(special[0] - 1) < 1e-6 and abs(special[1] + 1) < 1e-6
    assert np.isnan(special[2])  # a NaN activation stays NaN through the squash
    assert special[3] == 0 and np.signbit(special[4])


def test_misaligned_dlpack_data_is_refused():
    """The CUDA entry checks a DLPack tensor's data address before launching (a misaligned float
    read on the GPU is a sticky error that breaks the whole CUDA context); the rule itself runs
    on the host, so it is tested here on numpy's DLPack capsules."""
    buf = np.zeros(4096 + 8, np.uint8)
    for offset in (1, 2, 3, 6):
        x = np.frombuffer(buf.data, dtype=np.float32, offset=offset, count=1024)
        with pytest.raises(ValueError, match=r"input: DLPack data .* not aligned to its 4-byte elements"):
            _core.check_dlpack_alignment(x.__dlpack__())
    _core.check_dlpack_alignment(np.frombuffer(buf.data, np.float32, offset=4, count=1024).__dlpack__())
    _core.check_dlpack_alignment(buf[3:].__dlpack__())  # bytes: any address


def test_no_race_between_threads_of_a_phase(setup):
    """Running every phase's threads in reverse order gives bit-identical scores: no phase reads
    what another thread writes in the same phase (a missing barrier would show here)."""
    model, _, _ = setup
    for tile in (32, 16):
        assert np.array_equal(emulate(model, IMAGES[:37], head_images=tile),
                              emulate(model, IMAGES[:37], reverse=True, head_images=tile))


def check_phases(model, x, **kw) -> dict:
    spec_dict, weights, connected = model_arrays(model.spec, model.state_dict())
    return _core.check_cuda_phases(spec_dict, weights, connected, np.ascontiguousarray(x), **kw)


@pytest.mark.parametrize("head_images", [32, 16])
def test_phase_read_write_checker_finds_no_conflict(setup, head_images):
    """Per phase, no thread writes a word another thread of the phase writes or reads (every
    read of another thread's result is behind a barrier). Two head tiles of images, so the
    partial last tile is checked too."""
    model, _, _ = setup
    n = head_images + 5
    report = check_phases(model, IMAGES[:n], head_images=head_images)
    # subsample: 3 phases x ceil(n/4) blocks; head: a prologue, C5 20 + F6 5 + output 3 chunk
    # phases, 3 squash/score phases, per 2 blocks (one block of output units for 10 classes)
    head_phases = 1 + 20 + 1 + 5 + 1 + 3 + 1
    assert report["phases"] == 3 * -(-n // 4) + head_phases * 2
    assert report["conflicts"] == 0, report["examples"]


@pytest.mark.parametrize(("kernel", "after"), [
    ("subsample", 0), ("subsample", 1),   # frames -> C1/S2 -> C3/S4
    ("head", 0),                          # the first C5 chunk staged -> accumulated
    ("head", 5),                          # two C5 chunks (double buffer)
    ("head", 19),                         # C5 chunk 19 -> the last one (staged by 19)
    ("head", 21),                         # C5 squash -> F6 chunk 0 (reads the C5 outputs)
    ("head", 27),                         # F6 squash -> output chunk 0 (reads the F6 outputs)
])
def test_phase_checker_catches_a_removed_barrier(setup, kernel, after):
    """The checker is not blind: without the barrier after phase `after`, it reports conflicts.
    (It sees a thread reading or overwriting another thread's write of the phase before; a
    barrier that only protects reads of the phase before from later writes, like the one after
    the last C5 chunk, is outside this debug mode.)"""
    model, _, _ = setup
    report = check_phases(model, IMAGES[:9], head_images=16, merge_kernel=kernel, merge_after=after)
    assert report["conflicts"] > 0


def test_nan_input_is_reported(setup):
    model, _, _ = setup
    x = normalize(IMAGES[:9], model.spec).astype(np.float32)
    x[6, 0, 3, 4] = np.nan
    x[8, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="input image 6 contains NaN or Inf"):
        emulate(model, x)


def test_chunked_launches(setup):
    """The engine splits big batches into launches; chunk offsets and NaN indices stay global."""
    model, _, _ = setup
    assert np.array_equal(emulate(model, IMAGES[:70], chunk=9), emulate(model, IMAGES[:70]))
    x = normalize(IMAGES[:30], model.spec).astype(np.float32)
    x[23, 0, 1, 1] = np.inf
    with pytest.raises(ValueError, match="input image 23 contains NaN or Inf"):
        emulate(model, x, chunk=7)


def variant(arch: str, **changes):
    spec = build_model(arch).spec
    pre = changes.pop("preprocessing", None)
    if pre:
        changes["preprocessing"] = dataclasses.replace(spec.preprocessing, **pre)
    return dataclasses.replace(spec, **changes)


@pytest.mark.parametrize("spec_changes", [
    {"c3_table": "full"},                                          # lenet5 with a dense C3
    {"preprocessing": {"ink": "black_on_white"}},                  # inverted ink
    {"head": "linear", "pooling": "max"},
], ids=["full-table", "black-on-white", "linear-max"])
def test_spec_variants(spec_changes):
    spec = variant("lenet5", **spec_changes)
    torch.manual_seed(5)
    model = build_model(spec).eval()
    cpu = lenet_ext.from_state_dict(spec, model.state_dict())
    got = emulate(model, IMAGES[:35])
    assert_scores_close(got, cpu.scores(IMAGES[:35]).astype(np.float64), rtol=1e-5)
    assert_scores_close(got, reference_scores(model, normalize(IMAGES[:35], spec)), rtol=1e-5)


@pytest.mark.parametrize("head_images", [32, 16])
@pytest.mark.parametrize("classes", [3, 17, 150])
def test_linear_head_widths(classes, head_images):
    """≤ 16 classes: one unit per thread; more: 8 per thread in blocks of 128 units."""
    names = tuple(f"c{i}" for i in range(classes))
    model = build_model("lenet-relu", class_names=names).eval()
    cpu = lenet_ext.from_state_dict(model.spec, model.state_dict())
    got = emulate(model, IMAGES[:34], head_images=head_images)
    assert got.shape == (34, classes)
    assert_scores_close(got, cpu.scores(IMAGES[:34]).astype(np.float64), rtol=1e-5)


def test_build_info_reports_cuda():
    info = lenet_ext.build_info()
    assert isinstance(info["cuda"], bool)
    assert isinstance(info["cuda_devices"], int) and info["cuda_devices"] >= 0
    cuda = info["cuda_info"]
    assert cuda["compiled"] == info["cuda"]
    assert len(cuda["devices"]) == info["cuda_devices"]
    if info["cuda"]:
        assert cuda["archs"] and "native" not in cuda["archs"]
    if info["cuda_devices"] == 0:
        assert cuda["error"]


def test_cuda_without_device_is_a_clear_error():
    info = lenet_ext.build_info()
    if info["cuda_devices"] > 0:
        pytest.skip("a CUDA device is present")
    model = make_model("lenet5")
    with pytest.raises(RuntimeError, match="device='cuda'.*use device='cpu'"):
        lenet_ext.from_state_dict(model.spec, model.state_dict(), device="cuda")
    # ... and the CPU backend still works.
    assert lenet_ext.from_state_dict(model.spec, model.state_dict()).scores(IMAGES[:2]).shape == (2, 10)


def test_gpu_check_script_without_a_gpu(tmp_path):
    """tools/gpu_check.sh refuses, with a message and exit 2, on a machine without a GPU, and
    writes nothing."""
    if shutil.which("nvidia-smi") and "GPU " in subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True).stdout:
        pytest.skip("this machine has a GPU: tools/gpu_check.sh would run for real")
    script = Path(__file__).resolve().parents[2] / "tools" / "gpu_check.sh"
    r = subprocess.run(["bash", str(script), str(tmp_path / "report")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert "gpu_check: no NVIDIA GPU here" in r.stderr
    assert not (tmp_path / "report").exists()


def main() -> None:
    """Print the emulator's measured errors: python -m tests.engine.test_cuda_emulator"""
    images = np.random.default_rng(0).integers(0, 256, (500, 28, 28), dtype=np.uint8)
    for arch in ("lenet5", "lenet-d2l", "lenet-relu"):
        model = make_model(arch, seed=3)
        cpu = lenet_ext.from_state_dict(model.spec, model.state_dict()).scores(images)
        ref = reference_scores(model, normalize(images, model.spec))
        scale = np.maximum(np.abs(ref).max(axis=1, keepdims=True), 1.0)
        for kind, x in (("uint8", images),
                        ("float32", normalize(images, model.spec).astype(np.float32))):
            emu = emulate(model, x)
            print(f"{arch:11s} {kind:8s} n=500  max relative error: emulator vs CPU "
                  f"{(np.abs(emu - cpu) / scale).max():.2e}, vs PyTorch float64 "
                  f"{(np.abs(emu - ref) / scale).max():.2e}")


if __name__ == "__main__":
    main()
