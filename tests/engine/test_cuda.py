"""device="cuda" on a real GPU against PyTorch on CUDA (skipped without a device). The kernels'
logic is proven without a GPU by test_cuda_emulator.py; these tests check the GPU run itself:
odd sizes, non-contiguous inputs, torch CUDA tensors (zero-copy, output on the input's device),
chunking of huge batches, errors."""

from __future__ import annotations

import concurrent.futures as cf

import numpy as np
import pytest
import torch

import lenet_ext

from .conftest import assert_scores_close, make_model, normalize

HAVE_GPU = lenet_ext.build_info()["cuda_devices"] > 0 and torch.cuda.is_available()
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not HAVE_GPU, reason="needs a CUDA device (and a CUDA torch)")]

RNG = np.random.default_rng(77)
IMAGES = RNG.integers(0, 256, (300, 28, 28), dtype=np.uint8)
IMAGES[::3] = np.where(RNG.random((len(IMAGES[::3]), 28, 28)) < 0.8, 0, 255)


def torch_cuda_scores(model, images: np.ndarray) -> np.ndarray:
    """PyTorch on CUDA in float64 (TF32 cannot creep in)."""
    x = torch.from_numpy(normalize(images, model.spec)).cuda()
    m = model.double().cuda()
    try:
        with torch.no_grad():
            return m(x).cpu().numpy()
    finally:
        model.float().cpu()


@pytest.fixture(scope="module")
def setup(arch):
    model = make_model(arch, seed=11)
    engine = lenet_ext.from_state_dict(model.spec, model.state_dict(), device="cuda")
    return model, engine, torch_cuda_scores(model, IMAGES)


@pytest.mark.parametrize("n", [1, 3, 5, 31, 33, 255, 300])
def test_numpy_odd_sizes(setup, n):
    _, engine, ref = setup
    assert_scores_close(engine.scores(IMAGES[:n]), ref[:n], rtol=1e-5)


def test_numpy_non_contiguous_and_float(setup):
    model, engine, ref = setup
    assert_scores_close(engine.scores(IMAGES[:80:2]), ref[:80:2], rtol=1e-5)
    x = normalize(IMAGES[:40], model.spec).astype(np.float32)
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    assert_scores_close(engine.scores(xt), ref[:40], rtol=1e-5)


@pytest.mark.parametrize("n", [1, 7, 129])
def test_torch_cuda_tensors_stay_on_device(setup, n):
    model, engine, ref = setup
    t = torch.from_numpy(IMAGES[:2 * n].copy()).cuda()
    out = engine.scores(t[:n])
    assert out.is_cuda and out.dtype == torch.float32 and out.device == t.device
    assert_scores_close(out.cpu().numpy(), ref[:n], rtol=1e-5)
    assert_scores_close(engine.scores(t[::2]).cpu().numpy(), ref[:2 * n:2], rtol=1e-5)  # strided
    assert_scores_close(engine.scores(t[:n, None]).cpu().numpy(), ref[:n], rtol=1e-5)
    xf = torch.from_numpy(normalize(IMAGES[:n], model.spec).astype(np.float32)).cuda()
    xf = xf.transpose(2, 3).contiguous().transpose(2, 3).requires_grad_()  # non-contiguous
    assert_scores_close(engine.scores(xf).detach().cpu().numpy(), ref[:n], rtol=1e-5)


def test_torch_tensor_on_a_side_stream(setup):
    _, engine, ref = setup
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        t = torch.from_numpy(IMAGES[:64].copy()).cuda(non_blocking=False)
        out = engine.scores(t)
    s.synchronize()
    assert_scores_close(out.cpu().numpy(), ref[:64], rtol=1e-5)


def test_huge_batch_is_chunked(setup):
    model, engine, _ = setup
    n = 65536 + 77
    idx = np.arange(n) % len(IMAGES)
    got = engine.scores(IMAGES[idx])
    ref = torch_cuda_scores(model, IMAGES)
    assert_scores_close(got, ref[idx], rtol=1e-5)


def test_errors(setup):
    model, engine, _ = setup
    x = normalize(IMAGES[:9], model.spec).astype(np.float32)
    x[5, 0, 2, 2] = np.nan
    with pytest.raises(ValueError, match="input image 5 contains NaN or Inf"):
        engine.scores(x)
    # CUDA tensors: the call does not wait for the GPU; check_finite does, and raises.
    engine.scores(torch.from_numpy(x).cuda())
    with pytest.raises(ValueError, match="input image 5"):
        engine.check_finite()
    engine.scores(torch.from_numpy(np.nan_to_num(x)).cuda())
    engine.check_finite()  # the flag is per call
    with pytest.raises(ValueError, match="got dtype int32"):
        engine.scores(torch.zeros(3, 28, 28, dtype=torch.int32, device="cuda"))
    assert engine.scores(IMAGES[:0]).shape == (0, engine.num_classes)


def test_concurrent_callers(setup):
    _, engine, ref = setup
    jobs = [(s, n) for s in range(0, 250, 50) for n in (1, 17, 50)]
    with cf.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda j: engine.scores(IMAGES[j[0]:j[0] + j[1]]), jobs))
    for (s, n), got in zip(jobs, results):
        assert_scores_close(got, ref[s:s + n], rtol=1e-5)


def test_build_info_lists_the_device():
    info = lenet_ext.build_info()
    assert info["cuda"] and info["cuda_devices"] >= 1
    assert info["cuda_info"]["devices"][0]["name"]


def test_predict_on_device(setup):
    _, engine, ref = setup
    labels, scores = engine.predict(torch.from_numpy(IMAGES[:20].copy()).cuda())
    assert labels.is_cuda and labels.dtype == torch.int64
    assert torch.equal(labels, scores.argmax(1))


def test_load_artifact_dir(artifact_dir):
    model, path = artifact_dir
    engine = lenet_ext.load(path, device="cuda")
    assert engine.device == "cuda"
    assert_scores_close(engine.scores(IMAGES[:45]), torch_cuda_scores(model, IMAGES[:45]), rtol=1e-5)


def test_device_call_is_asynchronous_and_capturable(setup):
    """No host synchronization inside the call: it can be captured in a CUDA graph, and replays
    read the graph's input buffer."""
    model, engine, ref = setup
    x = torch.from_numpy(IMAGES[:64].copy()).cuda()
    xf = torch.from_numpy(normalize(IMAGES[:64], model.spec).astype(np.float32)).cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture, as torch recommends
        engine.scores(x)
        engine.scores(xf)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = engine.scores(x)
        out_f = engine.scores(xf)
    x.copy_(torch.from_numpy(IMAGES[64:128].copy()))
    xf.copy_(torch.from_numpy(normalize(IMAGES[64:128], model.spec).astype(np.float32)))
    graph.replay()
    torch.cuda.synchronize()
    assert_scores_close(out.cpu().numpy(), ref[64:128], rtol=1e-5)
    assert_scores_close(out_f.cpu().numpy(), ref[64:128], rtol=1e-5)
    engine.check_finite()


@pytest.mark.parametrize("n", [100, 5000, 70000])
def test_numpy_chunked_pipeline(setup, n):
    """Host batches are cut into chunks staged by several threads on two streams."""
    model, engine, _ = setup
    idx = np.arange(n) % len(IMAGES)
    ref = torch_cuda_scores(model, IMAGES)
    assert_scores_close(engine.scores(IMAGES[idx]), ref[idx], rtol=1e-5)
    x = normalize(IMAGES[idx[:min(n, 6000)]], model.spec).astype(np.float32)
    assert_scores_close(engine.scores(x), ref[idx[:min(n, 6000)]], rtol=1e-5)
