"""The plain deployment form of a LeNet: the paper's parameters folded into standard layers.

Training and checkpoints keep the paper's parameterization (the C3 table as 1,516 weights,
subsampling as coefficient + bias, the squash 1.7159·tanh(2a/3), RBF distances). The exported
graphs compute the same scores with as few and as standard operators as the math allows:

* C3 is a dense 6→16 convolution with zeros where the table has no connection;
* trainable subsampling is a 2×2 stride-2 depthwise convolution (weight = coefficient, 4 taps);
* the squash's slope 2/3 is folded into the weights and bias of the sum it squashes and its
  amplitude 1.7159 into the weights of whatever reads it, so the graph applies a bare Tanh;
  average and max pooling commute with that positive amplitude, so it passes through them;
* the RBF head is one Gemm: −‖A·t − P‖² = [t, t²] · [2A·P, −A²·1]ᵀ − ‖P‖² (t = tanh output).

For ``lenet5`` this is 5 Conv + 6 Tanh + Flatten + Mul + Concat + 2 Gemm.

:func:`fold` is numpy only, float64 inside and float32 out, and deterministic, so a loader can
re-fold the paper parameters stored in an artifact and demand bit-equality with the graph's
weights. :func:`encode_params`/:func:`decode_params` are that stored form: the paper parameters
as raw little-endian float32 in :func:`lenet.spec.weight_shapes` order, base64 text (the one
form that ONNX ``metadata_props`` and ``.pt2`` extra files both take). No code, no pickle.
"""

from __future__ import annotations

import base64
import binascii
from typing import Mapping

import numpy as np

from .spec import ArchSpec, c3_slot_positions, layer_widths, weight_shapes

# f(a) = A tanh(S a): the paper's squash (lenet.models.layers uses the same two numbers).
TANH_AMPLITUDE = 1.7159
TANH_SLOPE = 2.0 / 3.0

PARAMS_KEY = "lenet.params"  # where the paper parameters ride next to the spec in each file
PARAMS_DTYPE = np.dtype("<f4")


def squash_constants(activation: str) -> tuple[float, float]:
    """(input slope, output amplitude) that the graph's bare activation leaves to the weights."""
    return (TANH_SLOPE, TANH_AMPLITUDE) if activation == "scaled_tanh" else (1.0, 1.0)


def plain_shapes(spec: ArchSpec) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the plain graph's weights (the deployment module's state dict)."""
    c1, c3, c5 = layer_widths(spec)
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (c1, 1, 5, 5), "conv1.bias": (c1,)}
    if spec.pooling == "trainable":
        shapes.update({"pool2.weight": (c1, 1, 2, 2), "pool2.bias": (c1,)})
    shapes.update({"conv3.weight": (c3, c1, 5, 5), "conv3.bias": (c3,)})
    if spec.pooling == "trainable":
        shapes.update({"pool4.weight": (c3, 1, 2, 2), "pool4.bias": (c3,)})
    shapes.update({"conv5.weight": (c5, c3, 5, 5), "conv5.bias": (c5,),
                   "fc6.weight": (84, c5), "fc6.bias": (84,)})
    head_in = 2 * 84 if spec.head == "rbf" else 84  # the RBF reads [t, t²]
    shapes.update({"out.weight": (spec.num_classes, head_in), "out.bias": (spec.num_classes,)})
    return shapes


ACTIVATION_OPS = {"scaled_tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu"}
POOL_OPS = {"avg": "AveragePool", "max": "MaxPool"}


def plain_onnx_ops(spec: ArchSpec) -> dict[str, int]:
    """How many nodes of each ONNX op type the plain graph of ``spec`` has (readers refuse an
    ONNX file whose graph is anything else)."""
    trainable = spec.pooling == "trainable"
    ops = {"Conv": 5 if trainable else 3, ACTIVATION_OPS[spec.activation]: 6 if trainable else 4,
           "Flatten": 1, "Gemm": 2}
    if not trainable:
        ops[POOL_OPS[spec.pooling]] = 2
    if spec.head == "rbf":
        ops.update({"Mul": 1, "Concat": 1})
    return ops


def fold(spec: ArchSpec, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The plain graph's weights (float32, :func:`plain_shapes`) from the paper parameters."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    slope, amp = squash_constants(spec.activation)
    out: dict[str, np.ndarray] = {}

    def weighted_sum(name: str, weight: np.ndarray, bias: np.ndarray, reads_amp: float) -> None:
        # weight·(amp·t) + bias, then the next activation's input slope.
        out[f"{name}.weight"] = slope * reads_amp * weight
        out[f"{name}.bias"] = slope * bias

    def pooling(name: str, key: str, maps: int, reads_amp: float) -> float:
        """Adds the pooling's weights if it has any; returns the amplitude its output carries."""
        if spec.pooling != "trainable":
            return reads_amp  # avg/max of amp·t = amp·(avg/max of t) for amp > 0
        coef = np.broadcast_to(p[f"{key}.coef"].reshape(maps, 1, 1, 1), (maps, 1, 2, 2))
        weighted_sum(name, coef, p[f"{key}.bias"], reads_amp)
        return amp

    c1_maps, c3_maps, _ = layer_widths(spec)
    weighted_sum("conv1", p["c1.weight"], p["c1.bias"], 1.0)
    a = pooling("pool2", "s2", c1_maps, amp)
    c3 = p["c3.weight"]
    if spec.c3_table == "lecun":
        dense = np.zeros((16, 6, 5, 5))
        for slot, (o, i) in enumerate(c3_slot_positions()):
            dense[o, i] = c3[slot]
        c3 = dense
    weighted_sum("conv3", c3, p["c3.bias"], a)
    a = pooling("pool4", "s4", c3_maps, amp)
    weighted_sum("conv5", p["c5.weight"], p["c5.bias"], a)
    weighted_sum("fc6", p["f6.weight"], p["f6.bias"], amp)
    if spec.head == "rbf":
        protos = p["output.prototypes"]  # [10, 84]
        out["out.weight"] = np.concatenate(
            [2.0 * amp * protos, np.full_like(protos, -amp * amp)], axis=1)
        out["out.bias"] = -(protos * protos).sum(axis=1)
    else:
        out["out.weight"] = amp * p["output.weight"]
        out["out.bias"] = p["output.bias"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def encode_params(spec: ArchSpec, params: Mapping[str, np.ndarray]) -> str:
    """The paper parameters as one base64 text of raw little-endian float32 (``weight_shapes``
    order)."""
    parts = []
    for name, shape in weight_shapes(spec).items():
        a = np.asarray(params[name], dtype=PARAMS_DTYPE)
        if a.shape != shape:
            raise ValueError(f"parameter {name!r} has shape {a.shape}, expected {shape}")
        parts.append(np.ascontiguousarray(a).tobytes())
    return base64.b64encode(b"".join(parts)).decode("ascii")


def decode_params(spec: ArchSpec, text: str | bytes) -> dict[str, np.ndarray]:
    """Inverse of :func:`encode_params`; ValueError when the text is not base64 or its size does
    not fit the spec."""
    try:
        blob = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{PARAMS_KEY} is not base64 text") from None
    shapes = weight_shapes(spec)
    expected = sum(int(np.prod(s)) for s in shapes.values()) * PARAMS_DTYPE.itemsize
    if len(blob) != expected:
        raise ValueError(f"{PARAMS_KEY} holds {len(blob)} bytes; a {spec.arch} network's "
                         f"parameters take {expected}")
    flat = np.frombuffer(blob, dtype=PARAMS_DTYPE)
    out, at = {}, 0
    for name, shape in shapes.items():
        n = int(np.prod(shape))
        out[name] = flat[at:at + n].reshape(shape).astype(np.float32)  # a private copy
        at += n
    return out
