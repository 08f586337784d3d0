"""The slow, obviously-right INT8 reference: the quantized math of :mod:`lenet.quant` in plain
NumPy integer arithmetic, one layer after another. The INT8 kernels must match it bit for bit."""

from __future__ import annotations

import numpy as np

from lenet.quant import ACT_ZERO, LAYERS
from lenet.spec import ArchSpec


def input_codes(spec: ArchSpec, x: np.ndarray, q: dict[str, np.ndarray]) -> np.ndarray:
    """int64 [N, S, S] ink codes: uint8 pixels [N,H,W] (padded with code 0) or float32 model
    input [N,1,S,S] quantized as ONNX QuantizeLinear does (x / scale, ties to even, + zero)."""
    if x.dtype == np.uint8:
        x = x.reshape(len(x), x.shape[-2], x.shape[-1]).astype(np.int64)
        if spec.preprocessing.ink == "black_on_white":
            x = 255 - x
        pad = (spec.input_size - x.shape[-1]) // 2
        return np.pad(x, ((0, 0), (pad, pad), (pad, pad))) if pad else x
    v = x.reshape(len(x), spec.input_size, spec.input_size).astype(np.float32)
    with np.errstate(over="ignore"):  # x / scale past float32's range is +-inf: saturated below
        codes = np.rint(v / q["input.scale"][0]) + np.float32(q["input.zero_point"][0])
    return np.clip(codes, 0, 255).astype(np.int64)  # saturated before the cast: any float fits


def requantize(acc: np.ndarray, q: dict[str, np.ndarray], layer: str, channel_axis: int) -> np.ndarray:
    """int32 accumulators → tanh output codes (int64)."""
    m = q[f"{layer}.multiplier"]
    shape = [1] * acc.ndim
    shape[channel_axis] = len(m)
    a = np.rint(acc.astype(np.float32) * m.reshape(shape)).astype(np.int64)
    return q[f"{layer}.table"][np.clip(a, -128, 127) + 128].astype(np.int64)


def conv(x: np.ndarray, q: dict[str, np.ndarray], layer: str) -> np.ndarray:
    w = q[f"{layer}.weight"].astype(np.int64)
    win = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))
    acc = np.einsum("nchwij,ocij->nohw", win, w) + q[f"{layer}.bias"].astype(np.int64)[None, :, None, None]
    assert np.abs(acc).max(initial=0) < 2 ** 31
    return requantize(acc, q, layer, 1)


def pool(x: np.ndarray, q: dict[str, np.ndarray], layer: str) -> np.ndarray:
    w = q[f"{layer}.weight"].astype(np.int64)[:, 0]
    n, c, h, wd = x.shape
    blocks = x.reshape(n, c, h // 2, 2, wd // 2, 2)
    acc = np.einsum("nchiwj,cij->nchw", blocks, w) + q[f"{layer}.bias"].astype(np.int64)[None, :, None, None]
    return requantize(acc, q, layer, 1)


def scores(spec: ArchSpec, q: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """float32 [N, 10]: minus the RBF distances, as the INT8 engine computes them."""
    assert LAYERS == ("conv1", "pool2", "conv3", "pool4", "conv5", "fc6")
    y = input_codes(spec, x, q)[:, None]
    y = conv(y, q, "conv1")
    y = pool(y, q, "pool2")
    y = conv(y, q, "conv3")
    y = pool(y, q, "pool4")
    y = conv(y, q, "conv5").reshape(len(y), -1)
    acc = y @ q["fc6.weight"].astype(np.int64).T + q["fc6.bias"].astype(np.int64)
    y = requantize(acc, q, "fc6", 1)
    u = (y - ACT_ZERO).astype(np.float32) * q["head.scale"][0]
    protos = q["head.prototypes"]
    total = np.zeros((len(y), len(protos)), np.float32)
    for j in range(u.shape[1]):  # j order, a multiply then an add: what the kernels do
        diff = u[:, j:j + 1] - protos[None, :, j]
        total = total + diff * diff
    return -total
