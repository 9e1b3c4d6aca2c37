"""Write a real `.tflite` of a small torch CNN with the flatbuffer schema that ai-edge-litert
ships (`ai_edge_litert.schema_py_generated`): no TensorFlow, no litert-torch.

The model is what a TensorFlow-born classifier looks like: NHWC input (optionally NCHW with
a leading TRANSPOSE, as litert-torch writes), CONV_2D with the BatchNorm folded into its
weights and a fused ReLU, MAX_POOL_2D, MEAN over H and W, FULLY_CONNECTED. Convolutions
pad explicitly (PAD then VALID), because TFLite's SAME padding of a stride-2 convolution is
not torch's symmetric padding. Handles the Sequential layer types of the demo CNN.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
import torch
from ai_edge_litert import schema_py_generated as fb
from torch import nn

OPS = fb.BuiltinOperator


class _Graph:
    def __init__(self) -> None:
        self.tensors: list = []
        self.buffers: list = [fb.BufferT()]  # buffer 0: the empty one
        self.operators: list = []
        self.codes: list[int] = []

    def tensor(self, shape, name: str, data: np.ndarray | None = None, dtype=np.float32):
        t = fb.TensorT()
        t.shape = list(shape)
        t.type = fb.TensorType.INT32 if dtype == np.int32 else fb.TensorType.FLOAT32
        t.name = name
        t.buffer = 0
        if data is not None:
            buf = fb.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data, dtype).tobytes(), np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code: int, inputs, outputs, options_type=0, options=None) -> None:
        if code not in self.codes:
            self.codes.append(code)
        o = fb.OperatorT()
        o.opcodeIndex = self.codes.index(code)
        o.inputs, o.outputs = list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.operators.append(o)


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[np.ndarray, np.ndarray]:
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0])
    if bn is not None:
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        w = w * scale.view(-1, 1, 1, 1)
        b = (b - bn.running_mean.double()) * scale + bn.bias.detach().double()
    # torch OIHW -> TFLite OHWI
    return w.permute(0, 2, 3, 1).float().numpy(), b.float().numpy()


def _layers(model: nn.Module) -> list[nn.Module]:
    mods = [m for m in model.modules() if not list(m.children())]
    return [m for m in mods if not isinstance(m, nn.Identity)]


def tflite_from_cnn(model: nn.Module, hw: tuple[int, int], path: Path, layout="NHWC") -> Path:
    """Write `model` (Conv2d/BatchNorm2d/ReLU/MaxPool2d/AdaptiveAvgPool2d(1)/Flatten/Linear)
    as a .tflite with a dynamic batch; `layout` is the input's (NCHW adds a TRANSPOSE)."""
    g = _Graph()
    h, w = hw
    c = 3
    shape_in = [1, h, w, c] if layout == "NHWC" else [1, c, h, w]
    x = g.tensor(shape_in, "input")
    g.tensors[x].shapeSignature = [-1, *shape_in[1:]]
    inp = x
    if layout == "NCHW":
        perm = g.tensor([4], "perm", np.array([0, 2, 3, 1]), np.int32)
        y = g.tensor([1, h, w, c], "nhwc")
        g.op(OPS.TRANSPOSE, [x, perm], [y], fb.BuiltinOptions.TransposeOptions,
             fb.TransposeOptionsT())  # fmt: skip
        x = y
    layers = _layers(model)
    i = 0
    while i < len(layers):
        m = layers[i]
        if isinstance(m, nn.Conv2d):
            bn = layers[i + 1] if isinstance(layers[i + 1], nn.BatchNorm2d) else None
            i += 1 if bn is not None else 0
            relu = i + 1 < len(layers) and isinstance(layers[i + 1], nn.ReLU)
            i += 1 if relu else 0
            weight, bias = _fold(m, bn)
            p, s, k = m.padding[0], m.stride[0], m.kernel_size[0]
            pads = g.tensor([4, 2], f"pads{i}", np.array([[0, 0], [p, p], [p, p], [0, 0]]),
                            np.int32)  # fmt: skip
            padded = g.tensor([1, h + 2 * p, w + 2 * p, c], f"padded{i}")
            g.op(OPS.PAD, [x, pads], [padded], fb.BuiltinOptions.PadOptions, fb.PadOptionsT())
            h, w, c = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1, m.out_channels
            out = g.tensor([1, h, w, c], f"conv{i}")
            opt = fb.Conv2DOptionsT()
            opt.padding, opt.strideH, opt.strideW = fb.Padding.VALID, s, s
            opt.fusedActivationFunction = fb.ActivationFunctionType.RELU if relu else 0
            wt = g.tensor(weight.shape, f"w{i}", weight)
            bt = g.tensor(bias.shape, f"b{i}", bias)
            g.op(OPS.CONV_2D, [padded, wt, bt], [out], fb.BuiltinOptions.Conv2DOptions, opt)
            x = out
        elif isinstance(m, nn.MaxPool2d):
            k = m.kernel_size
            h, w = h // k, w // k
            out = g.tensor([1, h, w, c], f"pool{i}")
            opt = fb.Pool2DOptionsT()
            opt.padding, opt.strideH, opt.strideW = fb.Padding.VALID, k, k
            opt.filterHeight, opt.filterWidth = k, k
            g.op(OPS.MAX_POOL_2D, [x], [out], fb.BuiltinOptions.Pool2DOptions, opt)
            x = out
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            axes = g.tensor([2], f"axes{i}", np.array([1, 2]), np.int32)
            out = g.tensor([1, c], f"mean{i}")
            opt = fb.ReducerOptionsT()
            opt.keepDims = False
            g.op(OPS.MEAN, [x, axes], [out], fb.BuiltinOptions.ReducerOptions, opt)
            x = out
        elif isinstance(m, nn.Linear):
            wt = g.tensor(m.weight.shape, f"fc_w{i}", m.weight.detach().numpy())
            bt = g.tensor(m.bias.shape, f"fc_b{i}", m.bias.detach().numpy())
            out = g.tensor([1, m.out_features], "logits")
            g.op(OPS.FULLY_CONNECTED, [x, wt, bt], [out],
                 fb.BuiltinOptions.FullyConnectedOptions, fb.FullyConnectedOptionsT())  # fmt: skip
            x = out
        elif not isinstance(m, nn.Flatten):
            raise ValueError(f"tflite_from_cnn: no TFLite op for {type(m).__name__}")
        i += 1
    return _write(g, [inp], [x], path)


def _write(g: _Graph, inputs, outputs, path: Path) -> Path:
    sub = fb.SubGraphT()
    sub.tensors, sub.operators = g.tensors, g.operators
    sub.inputs, sub.outputs, sub.name = list(inputs), list(outputs), "main"
    model = fb.ModelT()
    model.version, model.description = 3, "evalharness test model"
    model.subgraphs, model.buffers = [sub], g.buffers
    model.operatorCodes = []
    for code in g.codes:
        oc = fb.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, code, 1
        model.operatorCodes.append(oc)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path
