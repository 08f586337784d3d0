"""The INT8 engine against the NumPy int8 reference (tests/engine/int8_reference.py), bit for bit,
on every INT8 instruction set this CPU runs; and every way a model or its scales can be wrong."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

import lenet_ext
from lenet import pretrained, quant
from lenet.artifacts import load_artifact
from lenet_ext import _core
from lenet_ext.loaders import model_arrays

from ..support import make_model
from .int8_reference import scores as reference_scores

INT8_ISA = lenet_ext.build_info()["int8_isa"]
ISAS = [] if INT8_ISA is None else ["avx512bw", "avx512vnni"] if INT8_ISA == "avx512vnni" else ["avx512bw"]
needs_int8 = pytest.mark.skipif(INT8_ISA is None, reason="this CPU has no AVX-512 BW: no INT8 kernels run")

# Pre-activation scales of the shipped weights as calibrated on the 60,000 MNIST training images
# (lenet-export --precision int8): fixed here so these tests need no dataset.
SCALES = {"conv1": 0.025196850299835205, "pool2": 0.014457033015787601, "conv3": 0.025196850299835205,
          "pool4": 0.00845306646078825, "conv5": 0.025196850299835205, "fc6": 0.014372001402080059}
CALIBRATION = {"dataset": "test", "split": "train", "images": 0, "sha256": "", "statistic": "fixed"}


@pytest.fixture(scope="module")
def shipped():
    art = load_artifact(pretrained.shipped("lenet5-mnist"))
    return art.spec, art.state_dict


def engine_for(spec, params, scales, isa, threads=2):
    block = quant.manifest_block(spec, params, scales, CALIBRATION)
    q = quant.engine_arrays(spec, params, block)
    return _core.Int8Engine(*model_arrays(spec, params), q, threads, isa), q


def assert_bit_exact(engine, spec, q, x):
    got, want = engine.scores(x), reference_scores(spec, q, x)
    assert got.dtype == np.float32 and got.shape == want.shape
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{len(bad)} scores differ, first at {bad[0]}: {got[tuple(bad[0])]} vs {want[tuple(bad[0])]}"


@needs_int8
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("n", [1, 5, 16, 17, 35])
def test_random_inputs_bit_exact(shipped, isa, n):
    spec, params = shipped
    engine, q = engine_for(spec, params, SCALES, isa)
    rng = np.random.default_rng(n)
    assert_bit_exact(engine, spec, q, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    assert_bit_exact(engine, spec, q, rng.integers(0, 256, (n, 32, 32), dtype=np.uint8))
    # float32 model input around the preprocessing range, and codes that land between steps
    assert_bit_exact(engine, spec, q, rng.uniform(-0.3, 1.4, (n, 1, 32, 32)).astype(np.float32))


@needs_int8
@pytest.mark.parametrize("isa", ISAS)
def test_random_weights_bit_exact(isa):
    """Other weights than the shipped ones: spread-out random LeNet-5 weights, random scales."""
    model = make_model("lenet5", seed=3)
    params = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(7)
    scales = {k: float(np.float32(rng.uniform(0.002, 0.05))) for k in quant.LAYERS}
    engine, q = engine_for(model.spec, params, scales, isa)
    assert_bit_exact(engine, model.spec, q, rng.integers(0, 256, (37, 28, 28), dtype=np.uint8))


@needs_int8
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("scale", [1e-5, 1e-13])
def test_saturation(shipped, isa, scale):
    """Tiny pre-activation scales push every code to -128/127 (at 1e-13 the rescaled sums pass
    int32's range before they are clamped); huge float inputs saturate the input codes at 0 and 255."""
    spec, params = shipped
    engine, q = engine_for(spec, params, dict.fromkeys(quant.LAYERS, scale), isa)
    assert q["conv1.multiplier"].min() > 1.0  # most pre-activations leave int8's range
    rng = np.random.default_rng(1)
    assert_bit_exact(engine, spec, q, rng.integers(0, 256, (20, 28, 28), dtype=np.uint8))
    x = rng.choice(np.array([-1e30, -5.0, 5.0, 1e30, 3.4e38], np.float32), (18, 1, 32, 32))
    assert_bit_exact(engine, spec, q, x)


@needs_int8
@pytest.mark.parametrize("isa", ISAS)
def test_zero_weight_channels(shipped, isa):
    """An all-zero channel has weight scale 1 (not 0, which would divide by zero) and codes 0."""
    spec, params = shipped
    params = {k: v.copy() for k, v in params.items()}
    params["c1.weight"][2] = 0
    params["c5.weight"][7] = 0
    params["f6.weight"][:5] = 0
    block = quant.manifest_block(spec, params, SCALES, CALIBRATION)
    assert block["scales"]["weights"]["conv1"][2] == 1.0
    engine, q = engine_for(spec, params, SCALES, isa)
    assert not q["conv1.weight"][2].any() and not q["fc6.weight"][:5].any()
    rng = np.random.default_rng(2)
    assert_bit_exact(engine, spec, q, rng.integers(0, 256, (17, 28, 28), dtype=np.uint8))


@needs_int8
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("value", [0, 1, 128, 255])
def test_all_equal_inputs(shipped, isa, value):
    spec, params = shipped
    engine, q = engine_for(spec, params, SCALES, isa)
    x = np.full((19, 28, 28), value, np.uint8)
    assert_bit_exact(engine, spec, q, x)
    s = engine.scores(x)
    assert (s == s[0]).all()  # every lane of a block computes alike


@needs_int8
def test_isas_agree_and_threads_do_not_matter(shipped):
    spec, params = shipped
    x = np.random.default_rng(4).integers(0, 256, (100, 28, 28), dtype=np.uint8)
    outs = [engine_for(spec, params, SCALES, isa, threads)[0].scores(x) for isa in ISAS for threads in (1, 2, 3)]
    for o in outs[1:]:
        assert np.array_equal(o, outs[0])


@needs_int8
def test_nan_input_names_the_image(shipped):
    spec, params = shipped
    engine, _ = engine_for(spec, params, SCALES, INT8_ISA)
    x = np.zeros((40, 1, 32, 32), np.float32)
    x[23, 0, 5, 5] = np.nan
    x[31, 0, 1, 1] = np.inf
    with pytest.raises(ValueError, match="input image 23 contains NaN or Inf"):
        engine.scores(x)


# --- loading through the manifest ---------------------------------------------------------------

@pytest.fixture()
def calibrated_dir(tmp_path, shipped):
    """The shipped artifact directory with an int8 block in its manifest."""
    spec, params = shipped
    d = tmp_path / "art"
    shutil.copytree(pretrained.shipped("lenet5-mnist"), d)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["int8"] = quant.manifest_block(spec, params, SCALES, CALIBRATION)
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d, manifest


def rewrite(d, manifest, edit):
    m = json.loads(json.dumps(manifest))
    edit(m["int8"])
    (d / "manifest.json").write_text(json.dumps(m))


@needs_int8
def test_load_int8(calibrated_dir, shipped):
    d, _ = calibrated_dir
    spec, params = shipped
    engine = lenet_ext.load(d, precision="int8", threads=2)
    assert engine.precision == "int8" and engine.isa == INT8_ISA and "int8" in repr(engine)
    block = quant.manifest_block(spec, params, SCALES, CALIBRATION)
    q = quant.engine_arrays(spec, params, block)
    x = np.random.default_rng(5).integers(0, 256, (21, 28, 28), dtype=np.uint8)
    assert np.array_equal(engine.scores(x), reference_scores(spec, q, x))
    # non-contiguous input goes through the wrapper's copy, same scores
    wide = np.zeros((21, 28, 56), np.uint8)
    wide[:, :, ::2] = x
    assert np.array_equal(engine.scores(wide[:, :, ::2]), engine.scores(x))
    labels, scores = engine.predict(x)
    assert np.array_equal(labels, scores.argmax(1))


def test_uncalibrated_model_is_refused():
    with pytest.raises(ValueError, match="never calibrated for int8.*--precision int8"):
        lenet_ext.load("lenet5-mnist", precision="int8")


def test_bare_model_file_is_refused(calibrated_dir):
    d, _ = calibrated_dir
    shutil.copy(d / "model.onnx", d.parent / "alone.onnx")
    with pytest.raises(ValueError, match="needs an artifact directory"):
        lenet_ext.load(d.parent / "alone.onnx", precision="int8")


def test_bad_precision_and_device(calibrated_dir):
    d, _ = calibrated_dir
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        lenet_ext.load(d, precision="int4")
    with pytest.raises(ValueError, match="CPU only"):
        lenet_ext.load(d, device="cuda", precision="int8")


@pytest.mark.parametrize("edit, message", [
    (lambda b: b["scales"]["pre_activations"].pop("conv3"), r"no scales\.pre_activations\.conv3"),
    (lambda b: b["scales"].pop("weights"), r"no scales\.weights"),
    (lambda b: b.pop("scales"), r"no scales"),
    (lambda b: b["scales"]["pre_activations"].update(pool4=-0.01), r"pre_activations\.pool4 must be a positive"),
    (lambda b: b["scales"]["pre_activations"].update(fc6=0.0), r"pre_activations\.fc6 must be a positive"),
    (lambda b: b["scales"]["pre_activations"].update(conv1="0.02"), r"pre_activations\.conv1 must be a number"),
    (lambda b: b["scales"]["weights"]["conv5"].__setitem__(3, -1.0), r"weights\.conv5\[3\] must be a positive"),
    (lambda b: b["scales"]["weights"].update(conv3=[0.01] * 15), r"conv3: expected a list of 16"),
    (lambda b: b["scales"]["weights"]["fc6"].__setitem__(10, b["scales"]["weights"]["fc6"][10] * 2),
     r"weight scales of fc6 do not match the weights \(channel 10"),
    (lambda b: b["scales"]["input"].update(zero_point=0), r"input scale/zero point .* do not match"),
    (lambda b: b["recipe"].update(name="other"), r"recipe 'other' is not"),
])
def test_bad_scales_are_refused(calibrated_dir, edit, message):
    d, manifest = calibrated_dir
    rewrite(d, manifest, edit)
    with pytest.raises(ValueError, match=message):
        lenet_ext.load(d, precision="int8")


def test_nan_scale_is_refused(calibrated_dir):
    """JSON has no NaN, but Python's json module reads one: refused like any other bad scale."""
    d, manifest = calibrated_dir
    m = json.loads(json.dumps(manifest))
    m["int8"]["scales"]["pre_activations"]["conv5"] = math.nan
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match=r"pre_activations\.conv5 must be a positive finite number, got nan"):
        lenet_ext.load(d, precision="int8")


def test_architectures_without_an_int8_form_are_refused():
    model = make_model("lenet-relu")
    params = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    with pytest.raises(quant.QuantError, match="not available for lenet-relu: activation 'relu'"):
        quant.manifest_block(model.spec, params, SCALES, CALIBRATION)


@needs_int8
def test_forcing_an_isa_the_cpu_lacks_is_an_error(shipped, monkeypatch):
    spec, params = shipped
    monkeypatch.setenv("LENET_MAX_CPU_ISA", "avx2")
    with pytest.raises(ValueError, match="isa 'avx512bw' is not available here"):
        engine_for(spec, params, SCALES, "avx512bw")
    with pytest.raises(ValueError, match="precision='int8' needs AVX-512"):
        engine_for(spec, params, SCALES, "")
    monkeypatch.delenv("LENET_MAX_CPU_ISA")
    with pytest.raises(ValueError, match="unknown int8 isa 'avx512'"):
        engine_for(spec, params, SCALES, "avx512")


def test_engine_checks_its_arrays(shipped):
    """The C++ side refuses arrays that lenet.quant would never produce."""
    spec, params = shipped
    block = quant.manifest_block(spec, params, SCALES, CALIBRATION)
    q = quant.engine_arrays(spec, params, block)
    arrays = model_arrays(spec, params)
    for key, value, message in [("conv3.multiplier", np.full(16, np.nan, np.float32), "conv3.multiplier.* positive and finite"),
                                ("conv1.weight", np.zeros(7, np.int8), "conv1.weight has 7 values"),
                                ("pool2.table", np.zeros(255, np.uint8), "pool2.table' must hold 256"),
                                ("fc6.bias", q["fc6.bias"].astype(np.int64), "fc6.bias' has dtype int64")]:
        bad = dict(q, **{key: value})
        with pytest.raises(ValueError, match=message):
            _core.Int8Engine(*arrays, bad, 1, INT8_ISA or "avx512bw")


@needs_int8
def test_nan_in_a_single_image_call(shipped):
    spec, params = shipped
    engine, _ = engine_for(spec, params, SCALES, INT8_ISA)
    x = np.zeros((1, 1, 32, 32), np.float32)
    x[0, 0, 31, 31] = -np.inf
    with pytest.raises(ValueError, match="input image 0 contains NaN or Inf"):
        engine.scores(x)
