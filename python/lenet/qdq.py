"""The INT8 model as a QDQ ONNX graph (``model.int8.onnx``): exactly the INT8 engine's quantized
math (:mod:`lenet.quant`) in standard operators, so ONNX Runtime runs the same int8 model.

Every weighted sum is ``DequantizeLinear`` (input codes) → Conv/Gemm with ``DequantizeLinear``
weights (int8, per output channel) and bias (int32) → ``QuantizeLinear`` to the pre-activation
code (uint8, zero point 128: the engine's int8 code + 128) → ``DequantizeLinear`` → Tanh →
``QuantizeLinear`` (scale 1/127, zero point 128). ONNX Runtime fuses DQ → Conv → Q into
QLinearConv. The last codes are dequantized straight to the paper's F6 output (scale A/127) and
the RBF head is Sub → Mul → ReduceSum → Neg in float32, as the engine's head.

Built with ``onnx.helper`` from the arrays, numpy and onnx only: no torch, nothing traced.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .quant import ACT_SCALE, ACT_ZERO, LAYERS
from .spec import ArchSpec

QDQ_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "scores"


def build(spec: ArchSpec, q: Mapping[str, np.ndarray], pre_scales: Mapping[str, float],
          weight_scales: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> Any:
    """The QDQ ModelProto (checked) of the quantized network ``q`` (:func:`lenet.quant.quantize`)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def qdq(x: str, name: str, scale: float, zero: int) -> str:
        s = const(f"{name}.scale", np.array(scale, np.float32))
        z = const(f"{name}.zero_point", np.array(zero, np.uint8))
        code = node("QuantizeLinear", [x, s, z], f"{name}.code")
        return node("DequantizeLinear", [code, s, z], f"{name}.value")

    s_in, z_in = float(q["input.scale"][0]), int(q["input.zero_point"][0])
    x = qdq(INPUT_NAME, "input", s_in, z_in)
    s_x = np.float32(s_in)
    for k in LAYERS:
        wq = q[f"{k}.weight"]
        s_w = np.asarray(weight_scales[k], np.float32)
        w = node("DequantizeLinear", [const(f"{k}.weight_q", wq), const(f"{k}.weight_scale", s_w),
                                      const(f"{k}.weight_zero", np.zeros(len(s_w), np.int8))],
                 f"{k}.weight", axis=0)
        b = node("DequantizeLinear", [const(f"{k}.bias_q", q[f"{k}.bias_q"]),
                                      const(f"{k}.bias_scale", (np.float64(s_x) * s_w).astype(np.float32)),
                                      const(f"{k}.bias_zero", np.zeros(len(s_w), np.int32))],
                 f"{k}.bias", axis=0)
        if k == "fc6":
            x = node("Flatten", [x], "conv5.flat", axis=1)
            pre = node("Gemm", [x, w, b], f"{k}.sum", transB=1)
        elif k.startswith("pool"):
            pre = node("Conv", [x, w, b], f"{k}.sum", kernel_shape=[2, 2], strides=[2, 2],
                       group=int(wq.shape[0]))
        else:
            pre = node("Conv", [x, w, b], f"{k}.sum", kernel_shape=[5, 5])
        a = qdq(pre, f"{k}.pre", float(np.float32(pre_scales[k])), ACT_ZERO)
        t = node("Tanh", [a], f"{k}.tanh")
        s_out = const(f"{k}.out.scale", np.array(ACT_SCALE, np.float32))
        z_out = const(f"{k}.out.zero_point", np.array(ACT_ZERO, np.uint8))
        code = node("QuantizeLinear", [t, s_out, z_out], f"{k}.out.code")
        if k == "fc6":  # straight to the paper's F6 output A·t, as the engine's head reads it
            x = node("DequantizeLinear", [code, const("head.scale", q["head.scale"].reshape(())), z_out], "f6")
        else:
            x = node("DequantizeLinear", [code, s_out, z_out], f"{k}.out.value")
        s_x = np.float32(ACT_SCALE)
    protos = q["head.prototypes"][None]  # [1, 10, 84]
    u = node("Unsqueeze", [x, const("head.axis1", np.array([1], np.int64))], "f6.rows")
    d = node("Sub", [u, const("head.prototypes", protos)], "head.diff")
    sq = node("Mul", [d, d], "head.squared")
    dist = node("ReduceSum", [sq, const("head.axis2", np.array([2], np.int64))], "head.distance",
                keepdims=0)
    node("Neg", [dist], OUTPUT_NAME)

    size = spec.input_size
    graph = helper.make_graph(
        nodes, f"{spec.arch}-int8",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 1, size, size])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", spec.num_classes])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", QDQ_OPSET)],
                              producer_name="lenet-export")
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = (f"{spec.arch} INT8 (QDQ): the lenet_ext INT8 engine's quantized math; "
                        "float32 input [batch, 1, S, S] normalized as the spec says")
    onnx.checker.check_model(model, full_check=True)
    return model
