"""lenet_ext scores against PyTorch eager in float64, for every arch, batch size, input kind."""

from __future__ import annotations

import concurrent.futures as cf
import gzip

import numpy as np
import pytest
import torch

import lenet_ext

from .conftest import FASHION_DIR, assert_scores_close, make_model, normalize, reference_scores

RNG = np.random.default_rng(1234)
IMAGES = RNG.integers(0, 256, (4133, 28, 28), dtype=np.uint8)
# Real-looking sparse strokes too: mostly background, a few saturated pixels.
IMAGES[::3] = np.where(RNG.random((len(IMAGES[::3]), 28, 28)) < 0.8, 0, 255)


@pytest.fixture(scope="module")
def reference(model_and_engine):
    model, _ = model_and_engine
    return reference_scores(model, normalize(IMAGES, model.spec))


def test_every_batch_size_1_to_70(model_and_engine, reference):
    """uint8, float32, and non-contiguous views of both, at every size from 1 to 70."""
    model, engine = model_and_engine
    floats = normalize(IMAGES[:1200], model.spec).astype(np.float32)
    for n in range(1, 71):
        start = (n * 37) % 1000
        want = reference[start:start + n]
        assert_scores_close(engine.scores(IMAGES[start:start + n]), want)
        assert_scores_close(engine.scores(floats[start:start + n]), want)
        assert_scores_close(engine.scores(IMAGES[start:start + 2 * n:2]), reference[start:start + 2 * n:2])
        assert_scores_close(engine.scores(floats[start:start + 2 * n:2]), reference[start:start + 2 * n:2])


@pytest.mark.parametrize("n", [127, 1000, 4133])
def test_large_batches(model_and_engine, reference, n):
    _, engine = model_and_engine
    assert_scores_close(engine.scores(IMAGES[:n]), reference[:n])


def test_empty_batch(model_and_engine):
    _, engine = model_and_engine
    labels, scores = engine.predict(IMAGES[:0])
    assert scores.shape == (0, engine.num_classes) and labels.shape == (0,)
    assert labels.dtype == np.int64


def test_predict_is_argmax(model_and_engine):
    _, engine = model_and_engine
    labels, scores = engine.predict(IMAGES[:33])
    assert np.array_equal(labels, scores.argmax(1))


@pytest.mark.parametrize("n", [1, 5, 16, 45])
def test_float_input_and_strides(model_and_engine, reference, n):
    model, engine = model_and_engine
    x = normalize(IMAGES[:2 * n], model.spec).astype(np.float32)
    assert_scores_close(engine.scores(x[:n]), reference[:n])
    assert_scores_close(engine.scores(x[::2]), reference[:2 * n:2])       # strided batch
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # Fortran-ish
    assert not xt.flags.c_contiguous
    assert_scores_close(engine.scores(xt[:n]), reference[:n])


@pytest.mark.parametrize("n", [1, 7, 40])
def test_uint8_strides_and_channel_axis(model_and_engine, reference, n):
    _, engine = model_and_engine
    assert_scores_close(engine.scores(IMAGES[:2 * n:2]), reference[:2 * n:2])
    assert_scores_close(engine.scores(IMAGES[:n, None]), reference[:n])
    big = np.zeros((n, 40, 40), np.uint8)
    big[:, 3:31, 5:33] = IMAGES[:n]
    assert_scores_close(engine.scores(big[:, 3:31, 5:33]), reference[:n])


def test_uint8_at_model_input_size(model_and_engine):
    """uint8 images already at the model's input size (32x32 for lenet5: no padding to add)."""
    model, engine = model_and_engine
    size = model.spec.input_size
    raw = RNG.integers(0, 256, (21, size, size), dtype=np.uint8)
    assert_scores_close(engine.scores(raw), reference_scores(model, normalize(raw, model.spec)))


@pytest.mark.parametrize("n", [1, 3, 20])
def test_torch_tensors(model_and_engine, reference, n):
    model, engine = model_and_engine
    t = torch.from_numpy(IMAGES[:2 * n].copy())
    assert_scores_close(engine.scores(t[:n]), reference[:n])
    assert_scores_close(engine.scores(t[::2]), reference[:2 * n:2])
    xf = torch.from_numpy(normalize(IMAGES[:n], model.spec).astype(np.float32)).requires_grad_()
    assert_scores_close(engine.scores(xf), reference[:n])


ISAS = ["baseline", "avx2", "avx512"]  # in the order a CPU gains them


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_every_isa_and_thread_count(model_and_engine, reference, isa, threads, monkeypatch):
    """Each kernel set runs what it was asked for. LENET_MAX_CPU_ISA caps what the engine may use,
    so every set is tested on any CPU that has the widest one; one it may not use is refused."""
    model, _ = model_and_engine
    have = lenet_ext.build_info()["cpu_isa"]
    if ISAS.index(isa) > ISAS.index(have):
        with pytest.raises(ValueError, match=f"isa '{isa}' is not available"):
            lenet_ext.from_state_dict(model.spec, model.state_dict(), threads=threads, isa=isa)
        pytest.skip(f"this CPU runs at most {have}")
    engine = lenet_ext.from_state_dict(model.spec, model.state_dict(), threads=threads, isa=isa)
    assert (engine.isa, engine.threads) == (isa, threads)
    # 8-12 (AVX2) and 16-25 (AVX-512): one block that the threads share stage by stage, then
    # single images. An engine's first such call always shares (later ones may back off on a
    # busy machine), so 25 and 9 come first: each set's first lone block has single images too.
    for n in (25, 9, 1, 2, 8, 12, 16, 17, 333):
        assert_scores_close(engine.scores(IMAGES[:n]), reference[:n])
    # The same set chosen by detection when the cap is this set.
    monkeypatch.setenv("LENET_MAX_CPU_ISA", isa)
    assert lenet_ext.build_info()["cpu_isa"] == isa
    assert lenet_ext.from_state_dict(model.spec, model.state_dict(), threads=threads).isa == isa
    wider = ISAS[ISAS.index(isa) + 1:]
    for w in wider:
        with pytest.raises(ValueError, match=f"isa '{w}' is not available here.*at most '{isa}'"):
            lenet_ext.from_state_dict(model.spec, model.state_dict(), isa=w)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("threads", [1, 2])
def test_every_batch_size_for_every_isa(model_and_engine, reference, isa, threads):
    """Sizes 1-70 on each kernel set: small path, shared lone blocks with single images,
    several blocks, partial blocks (the lanes and the small-path limit differ per set)."""
    model, _ = model_and_engine
    if ISAS.index(isa) > ISAS.index(lenet_ext.build_info()["cpu_isa"]):
        pytest.skip(f"this CPU cannot run {isa}")
    engine = lenet_ext.from_state_dict(model.spec, model.state_dict(), threads=threads, isa=isa)
    for n in range(1, 71):
        start = (n * 53) % 1000
        assert_scores_close(engine.scores(IMAGES[start:start + n]), reference[start:start + n])


def test_bad_isa_cap(model_and_engine, monkeypatch):
    model, _ = model_and_engine
    monkeypatch.setenv("LENET_MAX_CPU_ISA", "sse9")
    with pytest.raises(ValueError, match="LENET_MAX_CPU_ISA='sse9'"):
        lenet_ext.from_state_dict(model.spec, model.state_dict())


def test_concurrent_python_threads(model_and_engine, reference):
    _, engine = model_and_engine
    jobs = [(s, n) for s in range(0, 3000, 250) for n in (1, 5, 64, 250)]
    with cf.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda j: engine.scores(IMAGES[j[0]:j[0] + j[1]]), jobs))
    for (s, n), got in zip(jobs, results):
        assert_scores_close(got, reference[s:s + n])


def read_idx(path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.fixture(scope="module")
def fashion_test_images():
    path = FASHION_DIR / "t10k-images-idx3-ubyte.gz"
    if not path.is_file():
        pytest.skip(f"Fashion-MNIST not installed ({path}; apt-get install dataset-fashion-mnist)")
    return read_idx(path)


def test_fashion_mnist_labels_agree(arch, fashion_test_images):
    """All 10,000 real test images: same scores, same labels except true near-ties."""
    model = make_model(arch, seed=7)
    engine = lenet_ext.from_state_dict(model.spec, model.state_dict())
    ref = reference_scores(model, normalize(fashion_test_images, model.spec))
    labels, scores = engine.predict(fashion_test_images)
    assert_scores_close(scores, ref)
    top2 = np.sort(ref, axis=1)[:, -2:]
    scale = np.maximum(np.abs(ref).max(axis=1), 1.0)
    decided = (top2[:, 1] - top2[:, 0]) > 1e-4 * scale
    assert decided.sum() > 9000
    assert np.array_equal(labels[decided], ref.argmax(1)[decided])


def test_gil_released_during_compute(model_and_engine):
    """Python threads keep running while a batch is computed. With a 1 s switch interval the
    worker is never forced to drop the GIL, so the main thread only advances if the engine
    releases it."""
    import sys
    import threading

    model, _ = model_and_engine
    engine = lenet_ext.from_state_dict(model.spec, model.state_dict(), threads=1)
    big = np.tile(IMAGES[:1024], (8, 1, 1))
    started, done = threading.Event(), threading.Event()

    def work():
        started.set()
        engine.scores(big)
        done.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    try:
        worker = threading.Thread(target=work)
        worker.start()
        started.wait()
        count = 0
        while not done.is_set():
            count += 1
        worker.join()
    finally:
        sys.setswitchinterval(old)
    assert count > 1000, f"main thread advanced only {count} steps: GIL held during compute?"


@pytest.mark.parametrize("arch, classes", [("lenet-relu", 26), ("lenet-d2l", 3), ("lenet-relu", 17)])
def test_other_class_counts(arch, classes):
    from lenet.models import build_model
    from lenet.spec import spec_for

    torch.manual_seed(classes)
    model = build_model(spec_for(arch, [f"c{i}" for i in range(classes)])).eval()
    engine = lenet_ext.from_state_dict(model.spec, model.state_dict())
    ref = reference_scores(model, normalize(IMAGES[:300], model.spec))
    for n in (1, 5, 16, 300):
        got = engine.scores(IMAGES[:n])
        assert got.shape == (n, classes)
        assert_scores_close(got, ref[:n])


def test_black_on_white_ink():
    import dataclasses

    from lenet.models import build_model

    base = make_model("lenet5")
    spec = dataclasses.replace(base.spec, preprocessing=dataclasses.replace(
        base.spec.preprocessing, ink="black_on_white"))
    model = build_model(spec).eval()
    model.load_state_dict(base.state_dict())
    engine = lenet_ext.from_state_dict(spec, model.state_dict())
    ref = reference_scores(model, normalize(IMAGES[:40], spec))
    for n in (1, 40):
        assert_scores_close(engine.scores(IMAGES[:n]), ref[:n])
