"""The INT8 form of a LeNet: the quantization recipe, its calibration, and the integer constants
that the INT8 engine (``lenet_ext.load(..., precision="int8")``) and the QDQ ONNX model
(``lenet-export --precision int8``) both read. This module is the one home of every quantization
rule; numpy only, so the engine's loader needs no torch.

The quantized math, on the plain graph (:mod:`lenet.plain`: the squash constants folded into the
weights, a bare tanh after every weighted sum):

* input: the raw pixel ink as a uint8 code q (q = pixel, or 255 - pixel for black-on-white ink;
  padding q = 0), x = s_in·(q − z_in) with s_in = preprocessing.scale/255 and
  z_in = −offset/s_in (20 for lenet5's −0.1 + 1.275·ink, an exact integer);
* every weighted sum (C1, S2, C3, S4, C5, F6): int8 weights per output channel
  (w_q = rint(w/s_w), s_w = max|w|/127, s_w = 1 for an all-zero channel), int32 accumulation
  acc = Σ w_q·(x_q − z_x) + b_q with b_q = rint(b/(s_x·s_w));
* its pre-activation is requantized per tensor to int8: a = clamp(rint(float32(acc)·M), −128, 127),
  M = float32(s_x·s_w/s_a), ties to even;
* the tanh is a 256-entry table: y = clamp(rint(tanh(s_a·a)·127), −127, 127) + 128, a uint8 code
  of scale 1/127 and zero point 128;
* the RBF head in float32 from the dequantized F6 codes: u = float32(y − 128)·float32(A/127),
  score_i = −Σ_j (u_j − P_ij)², summed in j order without fused multiply-adds.

Calibration: s_a = min(max |a| over the calibration images in the float plain graph,
PREACT_CLIP)/127. Beyond ±PREACT_CLIP the tanh's output code is already ±127, so a wider range
would only coarsen the steps near zero.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Mapping

import numpy as np

from .plain import TANH_AMPLITUDE, fold
from .spec import ArchSpec

LAYERS = ("conv1", "pool2", "conv3", "pool4", "conv5", "fc6")
CHANNELS = {"conv1": 6, "pool2": 6, "conv3": 16, "pool4": 16, "conv5": 120, "fc6": 84}
ACT_SCALE = 1.0 / 127.0   # tanh outputs in (-1, 1): uint8 codes 1..255
ACT_ZERO = 128
PREACT_CLIP = 3.2         # atanh(126.5/127) = 3.11: past it tanh's code is 127 anyway
RECIPE_NAME = "lenet-int8-v1"
CALIBRATION_IMAGES = 60000


class QuantError(ValueError):
    """A model that cannot be run in int8, or int8 scales that are missing or inconsistent."""


def check_supported(spec: ArchSpec) -> None:
    """The INT8 path covers the faithful LeNet-5 form: scaled tanh, trainable subsampling, RBF
    head, C1 without zero padding."""
    wrong = [f"{name} {have!r} (int8 needs {want!r})" for name, have, want in (
        ("activation", spec.activation, "scaled_tanh"), ("pooling", spec.pooling, "trainable"),
        ("head", spec.head, "rbf"), ("c1_padding", spec.c1_padding, 0)) if have != want]
    if wrong:
        raise QuantError(f"precision='int8' is not available for {spec.arch}: " + "; ".join(wrong))


def input_quant(spec: ArchSpec) -> tuple[np.float32, int]:
    """(s_in, z_in): the input code is the pixel's ink, 0..255."""
    pre = spec.preprocessing
    scale = np.float32(pre.scale / 255.0)
    zero = -pre.offset / (pre.scale / 255.0)
    if pre.scale <= 0 or abs(zero - round(zero)) > 1e-3 or not 0 <= round(zero) <= 255:
        raise QuantError(f"precision='int8' needs preprocessing whose offset is a whole number of "
                         f"ink steps (scale/255) in 0..255 below zero; {spec.arch} has scale "
                         f"{pre.scale} and offset {pre.offset}")
    return scale, int(round(zero))


def weight_scales(w: np.ndarray) -> np.ndarray:
    """Per output channel: max|w|/127, float32; 1 for an all-zero channel (its codes are 0)."""
    peak = np.abs(np.asarray(w, np.float64).reshape(len(w), -1)).max(axis=1)
    return np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)


def plain_weights(spec: ArchSpec, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    check_supported(spec)
    return fold(spec, params)


# --- calibration: the float plain graph, numpy ------------------------------------------------

def model_input(spec: ArchSpec, images: np.ndarray) -> np.ndarray:
    """uint8 [N,28,28] or [N,S,S] → float32 [N,1,S,S] by the spec's preprocessing."""
    pre = spec.preprocessing
    ink = images.astype(np.float32) / np.float32(255.0)
    if pre.ink == "black_on_white":
        ink = 1 - ink
    pad = (spec.input_size - images.shape[-1]) // 2
    if pad:
        ink = np.pad(ink, ((0, 0), (pad, pad), (pad, pad)))
    return (np.float32(pre.offset) + np.float32(pre.scale) * ink)[:, None]


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    win = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))
    return np.einsum("nchwij,ocij->nohw", win, w, optimize=True) + b[None, :, None, None]


def _pool(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    n, c, h, wd = x.shape
    blocks = x.reshape(n, c, h // 2, 2, wd // 2, 2)
    return np.einsum("nchiwj,cij->nchw", blocks, w[:, 0]) + b[None, :, None, None]


def float_preactivations(spec: ArchSpec, plain: Mapping[str, np.ndarray], x: np.ndarray
                         ) -> dict[str, np.ndarray]:
    """The plain graph's pre-activations (the inputs of its tanh) for model input ``x``."""
    out = {}
    a = _conv(x, plain["conv1.weight"], plain["conv1.bias"]); out["conv1"] = a
    a = _pool(np.tanh(a), plain["pool2.weight"], plain["pool2.bias"]); out["pool2"] = a
    a = _conv(np.tanh(a), plain["conv3.weight"], plain["conv3.bias"]); out["conv3"] = a
    a = _pool(np.tanh(a), plain["pool4.weight"], plain["pool4.bias"]); out["pool4"] = a
    a = _conv(np.tanh(a), plain["conv5.weight"], plain["conv5.bias"]).reshape(len(x), -1)
    out["conv5"] = a
    out["fc6"] = np.tanh(a) @ plain["fc6.weight"].T + plain["fc6.bias"]
    return out


def calibrate(spec: ArchSpec, params: Mapping[str, np.ndarray], images: np.ndarray,
              chunk: int = 2000) -> dict[str, float]:
    """Pre-activation scales s_a per layer from uint8 calibration images (training images)."""
    plain = plain_weights(spec, params)
    peak = dict.fromkeys(LAYERS, 0.0)
    for at in range(0, len(images), chunk):
        pre = float_preactivations(spec, plain, model_input(spec, images[at:at + chunk]))
        for name, a in pre.items():
            peak[name] = max(peak[name], float(np.abs(a).max()))
    return {name: float(np.float32(min(p, PREACT_CLIP) / 127.0 if p > 0 else 1.0))
            for name, p in peak.items()}


def calibration_record(images: np.ndarray, dataset: str, split: str) -> dict[str, Any]:
    return {"dataset": dataset, "split": split, "images": int(len(images)),
            "sha256": hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest(),
            "statistic": f"max |pre-activation| in the float plain graph, clipped at {PREACT_CLIP}"}


def recipe() -> dict[str, Any]:
    return {
        "name": RECIPE_NAME,
        "weights": "int8 symmetric per output channel: scale max|w|/127 (1 for an all-zero channel)",
        "input": "uint8 ink code: scale preprocessing.scale/255, zero point -offset/scale",
        "pre_activations": f"int8 per tensor, symmetric: scale min(max|a|, {PREACT_CLIP})/127, "
                           "requantized as rint(float32(acc) * float32(s_x*s_w/s_a)), ties to even",
        "activations": "tanh by a 256-entry table to uint8 codes, scale 1/127, zero point 128",
        "head": "RBF in float32 from the dequantized F6 codes",
    }


# --- the manifest's int8 block ------------------------------------------------------------------

def manifest_block(spec: ArchSpec, params: Mapping[str, np.ndarray], pre_scales: Mapping[str, float],
                   calibration: Mapping[str, Any]) -> dict[str, Any]:
    plain = plain_weights(spec, params)
    s_in, z_in = input_quant(spec)
    return {"recipe": recipe(), "calibration": dict(calibration),
            "scales": {"input": {"scale": float(s_in), "zero_point": z_in},
                       "pre_activations": {k: float(pre_scales[k]) for k in LAYERS},
                       "weights": {k: weight_scales(plain[f"{k}.weight"]).tolist() for k in LAYERS}}}


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise QuantError(f"int8 scale {where} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise QuantError(f"int8 scale {where} must be a positive finite number, got {value!r}")
    return float(value)


def _field(d: Any, key: str, where: str) -> Any:
    if not isinstance(d, Mapping) or key not in d:
        raise QuantError(f"the manifest's int8 block has no {where}{key} (re-run lenet-export "
                         "--precision int8)")
    return d[key]


def read_block(spec: ArchSpec, params: Mapping[str, np.ndarray], block: Any
               ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """(pre-activation scales, plain weights) from a manifest's ``int8`` block, every scale checked:
    present, a positive finite number, and the weight scales equal to the recipe's on these
    weights (else the block was calibrated for other weights)."""
    if block is None:
        raise QuantError("this model was never calibrated for int8 (its manifest has no 'int8' "
                         "block): export it with lenet-export --precision int8")
    if not isinstance(block, Mapping):
        raise QuantError(f"the manifest's int8 block must be an object, got {type(block).__name__}")
    plain = plain_weights(spec, params)
    recipe_block = block.get("recipe")
    name = recipe_block.get("name") if isinstance(recipe_block, Mapping) else None
    if name != RECIPE_NAME:
        raise QuantError(f"int8 recipe {name!r} is not {RECIPE_NAME!r}, the one this engine runs")
    scales = _field(block, "scales", "")
    inp = _field(scales, "input", "scales.")
    s_in, z_in = input_quant(spec)
    got = _positive(_field(inp, "scale", "scales.input."), "scales.input.scale")
    if np.float32(got) != s_in or _field(inp, "zero_point", "scales.input.") != z_in:
        raise QuantError(f"int8 input scale/zero point ({got}, {inp.get('zero_point')}) do not "
                         f"match the spec's preprocessing ({float(s_in)}, {z_in})")
    pre = _field(scales, "pre_activations", "scales.")
    pre_scales = {k: _positive(_field(pre, k, "scales.pre_activations."), f"pre_activations.{k}")
                  for k in LAYERS}
    wts = _field(scales, "weights", "scales.")
    for k in LAYERS:
        listed = _field(wts, k, "scales.weights.")
        if not isinstance(listed, list) or len(listed) != CHANNELS[k]:
            raise QuantError(f"int8 weight scales of {k}: expected a list of {CHANNELS[k]} "
                             f"(one per output channel), got "
                             f"{len(listed) if isinstance(listed, list) else type(listed).__name__}")
        values = np.array([_positive(v, f"weights.{k}[{i}]") for i, v in enumerate(listed)],
                          np.float64)
        want = weight_scales(plain[f"{k}.weight"]).astype(np.float64)
        if not np.allclose(values, want, rtol=1e-6, atol=0):
            i = int(np.argmax(np.abs(values - want) / want))
            raise QuantError(f"int8 weight scales of {k} do not match the weights (channel {i}: "
                             f"{values[i]:.6g} recorded, {want[i]:.6g} from the weights): the "
                             "block was calibrated for other weights")
    return pre_scales, plain


# --- the integer constants ----------------------------------------------------------------------

def tanh_table(pre_scale: float) -> np.ndarray:
    """uint8 [256]: pre-activation code a (index a + 128) → tanh output code."""
    a = np.arange(-128, 128, dtype=np.float64)
    y = np.rint(np.tanh(np.float64(np.float32(pre_scale)) * a) * 127.0)
    return (np.clip(y, -127, 127) + ACT_ZERO).astype(np.uint8)


def quantize(spec: ArchSpec, plain: Mapping[str, np.ndarray], pre_scales: Mapping[str, float],
             params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The INT8 engine's arrays: per layer ``weight`` int8 (the plain shape), ``bias`` int32
    (b_q − z_x·Σw_q; ``bias_q`` is b_q alone, for the QDQ graph), ``multiplier`` float32 [out], ``table`` uint8 [256]; the head's
    ``head.scale`` (float32 A/127) and ``head.prototypes`` float32 [10, 84]; ``input.scale`` and
    ``input.zero_point``."""
    s_in, z_in = input_quant(spec)
    out: dict[str, np.ndarray] = {"input.scale": np.array([s_in], np.float32),
                                  "input.zero_point": np.array([z_in], np.int32)}
    s_x, z_x = np.float64(s_in), z_in
    for k in LAYERS:
        w = np.asarray(plain[f"{k}.weight"], np.float64)
        b = np.asarray(plain[f"{k}.bias"], np.float64)
        s_w = weight_scales(w).astype(np.float64)
        shape = (-1,) + (1,) * (w.ndim - 1)
        wq = np.clip(np.rint(w / s_w.reshape(shape)), -127, 127).astype(np.int64)
        s_a = np.float64(np.float32(pre_scales[k]))
        bias_q = np.rint(b / (s_x * s_w))
        bias = bias_q - z_x * wq.reshape(len(wq), -1).sum(axis=1)
        if max(np.abs(bias).max(), np.abs(bias_q).max()) >= 2 ** 23:
            raise QuantError(f"int8 bias of {k} does not fit the accumulator (|b_q| up to "
                             f"{np.abs(bias).max():.3g}): its weight scales are too small for "
                             "its biases")
        out[f"{k}.weight"] = wq.astype(np.int8)
        out[f"{k}.bias"] = bias.astype(np.int32)
        out[f"{k}.bias_q"] = bias_q.astype(np.int32)  # the standard QDQ bias (no zero-point term)
        out[f"{k}.multiplier"] = (s_x * s_w / s_a).astype(np.float32)
        out[f"{k}.table"] = tanh_table(pre_scales[k])
        s_x, z_x = np.float64(np.float32(ACT_SCALE)), ACT_ZERO
    out["head.scale"] = np.array([TANH_AMPLITUDE / 127.0], np.float32)
    out["head.prototypes"] = np.ascontiguousarray(params["output.prototypes"], np.float32)
    return out


def engine_arrays(spec: ArchSpec, params: Mapping[str, np.ndarray], block: Any
                  ) -> dict[str, np.ndarray]:
    """What the INT8 engine loads: the manifest block checked, then :func:`quantize`."""
    pre_scales, plain = read_block(spec, params, block)
    return quantize(spec, plain, pre_scales, params)
