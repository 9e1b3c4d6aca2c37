"""torch -> ONNX export, cached on disk by content hash.

The cache key is the weights' SHA-256, the builder, the export settings and the torch/onnx
versions: a new checkpoint or a new exporter gives a new file, the same inputs never
re-export. Normalization in the graph is added by prepending Sub/Div nodes to the exported
graph (what a deployment engineer does to an existing ONNX file), not by re-exporting.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from evalharness.models.source import ModelSpec, build_torch_model

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "logits"


def _cache_key(spec: ModelSpec, extra: dict) -> str:
    payload = dict(
        weights=spec.weights_sha256,
        builder=spec.builder,
        size=spec.input_size,
        opset=OPSET,
        torch=torch.__version__,
        onnx=onnx.__version__,
        **extra,
    )
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _atomic_save(model: onnx.ModelProto, path: Path) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    onnx.save(model, tmp)
    os.replace(tmp, path)


def export_onnx(spec: ModelSpec, cache_dir: str | Path) -> Path:
    """The plain fp32 ONNX of the torch model (input NCHW float32, dynamic batch).

    An `onnx`-source model is its own export and is returned as it is.
    """
    if spec.source == "onnx":
        return spec.weights
    cache = Path(cache_dir).expanduser() / "onnx"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{spec.name}-{_cache_key(spec, {})}.onnx"
    if path.exists():
        return path
    module = build_torch_model(spec)
    dummy = torch.zeros(1, 3, spec.input_size, spec.input_size)
    tmp = path.with_suffix(f".tmp{os.getpid()}.onnx")
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated but exact and dependency-light for CNNs.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (dummy,),
            str(tmp),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    onnx.checker.check_model(str(tmp))
    os.replace(tmp, path)
    return path


def with_graph_normalization(src: Path, mean, std) -> Path:
    """A copy of `src` whose input takes raw 0..255 pixels: x -> (x - 255 mean) / (255 std)."""
    tag = hashlib.sha256(repr((src.name, tuple(mean), tuple(std))).encode()).hexdigest()[:12]
    path = src.with_name(f"{src.stem}-graphnorm-{tag}.onnx")
    if path.exists():
        return path
    model = onnx.load(str(src))
    graph = model.graph
    inner = "eh_normalized"
    for node in graph.node:  # route the original input's consumers to the normalized tensor
        for i, name in enumerate(node.input):
            if name == INPUT_NAME:
                node.input[i] = inner
    m = numpy_helper.from_array((np.asarray(mean, np.float32) * 255).reshape(1, 3, 1, 1), "eh_mean")
    s = numpy_helper.from_array((np.asarray(std, np.float32) * 255).reshape(1, 3, 1, 1), "eh_std")
    graph.initializer.extend([m, s])
    nodes = [
        helper.make_node("Sub", [INPUT_NAME, "eh_mean"], ["eh_centered"], name="eh_sub_mean"),
        helper.make_node("Div", ["eh_centered", "eh_std"], [inner], name="eh_div_std"),
    ]
    for n in reversed(nodes):
        graph.node.insert(0, n)
    assert graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    onnx.checker.check_model(model)
    _atomic_save(model, path)
    return path


def to_float16(src: Path) -> Path:
    """A float16 copy of an fp32 ONNX model with fp32 input and output (Casts at both ends).

    Weights and constants become float16, so the whole graph computes in half precision as an
    fp16 deployment does; the interface stays float32 so the host pipeline is unchanged.
    """
    path = src.with_name(f"{src.stem}-fp16.onnx")
    if path.exists():
        return path
    model = onnx.load(str(src))
    graph = model.graph
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            half = numpy_helper.to_array(init).astype(np.float16)
            init.CopyFrom(numpy_helper.from_array(half, init.name))
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.t.data_type == TensorProto.FLOAT:
                half = numpy_helper.to_array(attr.t).astype(np.float16)
                attr.t.CopyFrom(numpy_helper.from_array(half, attr.t.name))
        node.input[:] = [f"{n}_fp16" if n == INPUT_NAME else n for n in node.input]
        node.output[:] = [f"{n}_fp16" if n == OUTPUT_NAME else n for n in node.output]
    graph.node.insert(
        0,
        helper.make_node(
            "Cast", [INPUT_NAME], [f"{INPUT_NAME}_fp16"], to=TensorProto.FLOAT16, name="eh_cast_in"
        ),
    )
    graph.node.append(
        helper.make_node(
            "Cast", [f"{OUTPUT_NAME}_fp16"], [OUTPUT_NAME], to=TensorProto.FLOAT, name="eh_cast_out"
        )
    )
    del graph.value_info[:]  # stale fp32 shape/type annotations; the runtime re-infers them
    onnx.checker.check_model(model)
    _atomic_save(model, path)
    return path
