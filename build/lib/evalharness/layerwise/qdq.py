"""Matching a QDQ model's tensors to the float model's, the way onnxruntime's qdq_loss_debug
does.

onnxruntime's QDQ quantizer keeps the float model's tensor names: an activation `X` becomes
`X -> QuantizeLinear -> X_QuantizeLinear_Output -> DequantizeLinear -> X_DequantizeLinear_Output`,
and a graph output `X` is renamed `X_QuantizeLinear_Input` before its Q/DQ pair so that the
DequantizeLinear can keep the name `X`. `qdq_loss_debug.create_activation_matching` strips
exactly these suffixes (the constants of `onnxruntime.quantization.quant_utils`) to pair a
QDQ tensor with the float tensor of the same name; here every QuantizeLinear on an
activation is one such pair ("quantization point").

Why the QuantizeLinear *output* (uint8/int8) is what a probe exposes, dequantized on the
host: it is the tensor an int8 runtime really materializes (ORT's fused QLinearConv writes
it under that very name), so marking it as a graph output leaves ORT's QDQ fusion intact;
on ResNet-20 the final logits stay bit-identical, while exposing the float tensor before
the QuantizeLinear stops the fusion and moves the logits by up to 0.19. Dequantizing on the
host is the DequantizeLinear formula, `(q - zero_point) * scale`, in float32.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization.quant_utils import (
    DEQUANT_OP_NAME,
    QUANT_INPUT_SUFFIX,
    QUANT_OP_NAME,
)


@dataclass(frozen=True)
class QdqPoint:
    """One quantized activation: its float name and how to read its int8 value back."""

    float_name: str  # the tensor's name in the float model (qdq_loss_debug's key)
    pre_qdq: str  # the float tensor entering QuantizeLinear in the QDQ model
    q_output: str  # the quantized tensor (what an int8 runtime materializes)
    node: str  # the QuantizeLinear node's name
    scale: np.ndarray = field(compare=False, repr=False)
    zero_point: np.ndarray = field(compare=False, repr=False)
    axis: int = 1

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """DequantizeLinear on the host: `(q - zero_point) * scale`, broadcast on `axis`."""
        scale, zp = self.scale.astype(np.float32), self.zero_point.astype(np.float32)
        if scale.size > 1:  # per-axis activations (rare): put the vector on its axis
            shape = [1] * q.ndim
            shape[self.axis % q.ndim] = scale.size
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        return (q.astype(np.float32) - zp) * scale


def float_name(qdq_name: str) -> str:
    """The float model's name of a QDQ model's tensor (the quantizer's renaming undone)."""
    if qdq_name.endswith(QUANT_INPUT_SUFFIX):
        return qdq_name[: -len(QUANT_INPUT_SUFFIX)]
    return qdq_name


def is_qdq(model: onnx.ModelProto) -> bool:
    """True when the graph holds a QuantizeLinear on an activation (a QDQ-format model)."""
    inits = {i.name for i in model.graph.initializer}
    return any(n.op_type == QUANT_OP_NAME and n.input[0] not in inits for n in model.graph.node)


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers and Constant-node values: where scales and zero points live."""
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def qdq_points(model: onnx.ModelProto) -> dict[str, QdqPoint]:
    """Every quantized activation of a QDQ model, keyed by its float name.

    A tensor quantized twice (two QuantizeLinear nodes on the same input, e.g. different
    scales for two consumers) keeps the first in graph order: the float value is the same.
    """
    values = _constants(model)
    points: dict[str, QdqPoint] = {}
    for node in model.graph.node:
        if node.op_type != QUANT_OP_NAME or node.input[0] in values:
            continue  # a weight quantized in the graph is a constant, not an activation
        name = float_name(node.input[0])
        if name in points:
            continue
        scale = values.get(node.input[1])
        zp = values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if scale is None:
            continue  # a scale computed at run time cannot be dequantized on the host
        zp = np.zeros_like(scale, dtype=np.uint8) if zp is None else zp
        points[name] = QdqPoint(
            name, node.input[0], node.output[0], node.name, scale, zp, _axis(node)
        )
    return points


def qdq_aliases(model: onnx.ModelProto) -> dict[str, str]:
    """QDQ tensor name -> float name for every tensor a Q/DQ pair renamed.

    With these aliases the QDQ graph reads as the float graph: Q and DQ become identities,
    and `X_QuantizeLinear_Output`, `X_DequantizeLinear_Output` and `X_QuantizeLinear_Input`
    all read as `X`. Weights dequantized from initializers are not activations (no alias).
    """
    aliases: dict[str, str] = {}
    values = _constants(model)
    for node in model.graph.node:
        if node.op_type == QUANT_OP_NAME and node.input[0] not in values:
            aliases[node.output[0]] = aliases.get(node.input[0], float_name(node.input[0]))
        elif node.op_type == DEQUANT_OP_NAME and node.input[0] in aliases:
            aliases[node.output[0]] = aliases[node.input[0]]
    for node in model.graph.node:
        for out in node.output:
            if out.endswith(QUANT_INPUT_SUFFIX):
                aliases.setdefault(out, float_name(out))
    return aliases
