"""lenet-serve through the official Triton HTTP client, unchanged: what a user of the Open
Inference Protocol gets (health, metadata, inference in binary and JSON, compression, errors),
every answer compared with the same engine in this process."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

MODEL = "lenet5-mnist"


@pytest.fixture(scope="module")
def client(server):
    with triton.InferenceServerClient(server.address, concurrency=8) as c:
        yield c


def same_scores(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to float rounding: the engine sums in another order for another batch size (its
    few-image path), while another image's scores would differ by whole units."""
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-4)


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.8, size=(n, 1, 32, 32)).astype(np.float32)


def as_input(x: np.ndarray, binary: bool = True, datatype: str = "FP32") -> triton.InferInput:
    item = triton.InferInput("input", list(x.shape), datatype)
    item.set_data_from_numpy(x, binary_data=binary)
    return item


def test_health_and_metadata(client, server):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready("second")
    assert not client.is_model_ready("no-such-model")
    meta = client.get_server_metadata()
    assert meta["name"] == "lenet-serve" and "binary_tensor_data" in meta["extensions"]
    model = client.get_model_metadata(MODEL)
    assert model["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 32, 32]}]
    assert model["parameters"]["accepted_inputs"] == [
        {"datatype": "FP32", "shape": [-1, 1, 32, 32]}, {"datatype": "FP32", "shape": [-1, 1024]},
        {"datatype": "UINT8", "shape": [-1, 28, 28]}, {"datatype": "UINT8", "shape": [-1, 1, 28, 28]},
        {"datatype": "UINT8", "shape": [-1, 32, 32]}, {"datatype": "UINT8", "shape": [-1, 1, 32, 32]}]
    assert [o["name"] for o in model["outputs"]] == ["scores", "classes"]
    assert model["parameters"]["class_names"] == [str(d) for d in range(10)]
    assert client.get_model_metadata(MODEL, model_version="1")["name"] == MODEL
    with pytest.raises(InferenceServerException, match="no version '7'"):
        client.get_model_metadata(MODEL, model_version="7")


def test_infer_binary_by_default(client, engine):
    """tritonclient's defaults: binary input, and no outputs named (so all of them, binary)."""
    x = images(7)
    result = client.infer(MODEL, [as_input(x)])
    np.testing.assert_array_equal(result.as_numpy("scores"), engine.scores(x))
    np.testing.assert_array_equal(result.as_numpy("classes"), engine.predict(x).labels)
    assert result.get_response()["outputs"][0]["parameters"]["binary_data_size"] == 7 * 10 * 4


def test_infer_json_both_ways(client, engine):
    x = images(3, seed=1)
    outputs = [triton.InferRequestedOutput("classes", binary_data=False)]
    result = client.infer(MODEL, [as_input(x, binary=False)], outputs=outputs, request_id="req-9")
    response = result.get_response()
    assert response["id"] == "req-9" and [o["name"] for o in response["outputs"]] == ["classes"]
    assert response["outputs"][0]["data"] == engine.predict(x).labels.tolist()


def test_flat_input_version_path_and_compression(client, engine):
    x = images(5, seed=2)
    flat = x.reshape(5, 32 * 32)
    for algorithm in ("gzip", "deflate"):
        result = client.infer("second", [as_input(flat)], model_version="1",
                              request_compression_algorithm=algorithm,
                              response_compression_algorithm=algorithm)
        np.testing.assert_array_equal(result.as_numpy("scores"), engine.scores(x))


def pixels(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def normalized(x: np.ndarray, engine) -> np.ndarray:
    """Raw white-on-black pixels [N,H,W] as the model's FP32 input, the slow way: the spec's
    preprocessing written out (pad a 28x28 image with background, then offset + scale * ink)."""
    p, size = engine.spec.preprocessing, engine.spec.input_size
    ink = np.zeros((len(x), size, size), np.float64)
    pad = (size - x.shape[-1]) // 2
    ink[:, pad:pad + x.shape[-2], pad:pad + x.shape[-1]] = x / 255.0
    return (p.offset + p.scale * ink).astype(np.float32)[:, None]


@pytest.mark.parametrize("shape", [(6, 28, 28), (3, 1, 28, 28), (5, 32, 32), (1, 1, 32, 32)])
def test_uint8_pixels(client, engine, shape):
    """Raw pixels (a quarter of FP32's bytes): the answer is the engine's on the same pixels in
    this process, and matches the FP32 answer for the same images normalized by hand."""
    x = pixels(shape, seed=len(shape) * 100 + shape[-1])
    result = client.infer(MODEL, [as_input(x, datatype="UINT8")])
    flat = x.reshape(len(x), shape[-1], shape[-1])
    np.testing.assert_array_equal(result.as_numpy("scores"), engine.scores(flat))
    np.testing.assert_array_equal(result.as_numpy("classes"), engine.predict(flat).labels)
    same_scores(result.as_numpy("scores"), engine.scores(normalized(flat, engine)))
    as_json = client.infer(MODEL, [as_input(x, binary=False, datatype="UINT8")])
    np.testing.assert_array_equal(as_json.as_numpy("scores"), result.as_numpy("scores"))


def test_fp32_and_uint8_requests_at_once_get_their_own_rows(client, engine):
    """Both datatypes and both pixel sizes in flight together: the batcher never concatenates
    different kinds, and every request gets the rows of its own input."""
    sent = []
    for i in range(12):
        kind = i % 3
        sent.append(images(3 + i, seed=i) if kind == 0 else
                    pixels((2 + i, 28, 28), seed=i) if kind == 1 else pixels((1 + i, 32, 32), seed=i))
    pending = [client.async_infer(MODEL, [as_input(x, datatype="FP32" if x.dtype == np.float32 else "UINT8")])
               for x in sent]
    for x, p in zip(sent, pending):
        same_scores(p.get_result().as_numpy("scores"), engine.scores(x))


def test_concurrent_requests_get_their_own_rows(client, engine):
    """Requests of different sizes at once are batched together; each must get exactly its rows."""
    sizes = [1, 3, 17, 1, 64, 2, 9, 1, 33, 5, 1, 128, 4, 1, 7, 250]
    inputs = [images(n, seed=100 + i) for i, n in enumerate(sizes)] * 3
    # tritonclient's own concurrency (8 connections, as the client fixture asks)
    pending = [client.async_infer(MODEL, [as_input(x)]) for x in inputs]
    for x, p in zip(inputs, pending):
        same_scores(p.get_result().as_numpy("scores"), engine.scores(x))


def test_async_requests(client, engine):
    x = [images(n, seed=n) for n in (1, 2, 3, 4)]
    pending = [client.async_infer(MODEL, [as_input(a)]) for a in x]
    for a, p in zip(x, pending):
        np.testing.assert_array_equal(p.get_result().as_numpy("classes"), engine.predict(a).labels)


@pytest.mark.parametrize("make, message", [
    (lambda: as_input(images(2)[:, :, :28, :28].copy()), r"shape \[2, 1, 28, 28\] is not accepted.*\[N, 1, 32, 32\]"),
    (lambda: as_input(np.zeros((2, 1, 32, 32), np.int32), datatype="INT32"),
     r"datatype INT32 is not accepted; send FP32 \(normalized\) or UINT8 \(raw pixels\)"),
    (lambda: as_input(pixels((2, 30, 30)), datatype="UINT8"),
     r"UINT8 shape \[2, 30, 30\] is not accepted.*\[N, 28, 28\] or \[N, 32, 32\]"),
    (lambda: as_input(pixels((2, 2, 28, 28)), datatype="UINT8"), r"UINT8 shape \[2, 2, 28, 28\] is not accepted"),
    (lambda: as_input(pixels((2, 784)), datatype="UINT8"), r"UINT8 shape \[2, 784\] is not accepted"),
    (lambda: as_input(np.where(np.arange(2048).reshape(2, 1, 32, 32) == 1500, np.nan, 0).astype(np.float32)),
     "NaN or infinite values in 1 of 2 images .the first is image 1."),
    (lambda: as_input(np.full((1, 1, 32, 32), np.inf, np.float32), binary=False), "NaN or infinite"),
])
def test_bad_tensors_are_400(client, make, message):
    with pytest.raises(InferenceServerException, match=message) as info:
        client.infer(MODEL, [make()])
    assert info.value.status() == "400"


def test_unknown_model_and_output(client):
    with pytest.raises(InferenceServerException, match="unknown model 'nope'; this server serves: lenet5-mnist, second") as info:
        client.infer("nope", [as_input(images(1))])
    assert info.value.status() == "404"
    with pytest.raises(InferenceServerException, match="unknown output 'probs'") as info:
        client.infer(MODEL, [as_input(images(1))], outputs=[triton.InferRequestedOutput("probs")])
    assert info.value.status() == "400"


def test_a_bad_request_fails_alone(client, engine):
    """Good and bad requests at once: the good ones are answered in full, the bad ones refused."""
    good = [images(n, seed=n) for n in (1, 4, 9, 16)]
    bad = np.full((3, 1, 32, 32), np.nan, np.float32)

    def outcome(pending):
        try:
            return pending.get_result().as_numpy("scores")
        except InferenceServerException as exc:
            return exc

    sent = [*good, bad, *good, bad]
    answers = [outcome(p) for p in [client.async_infer(MODEL, [as_input(x)]) for x in sent]]
    for x, answer in zip(sent, answers):
        if np.isnan(x).any():
            assert isinstance(answer, InferenceServerException) and answer.status() == "400"
        else:
            same_scores(answer, engine.scores(x))
