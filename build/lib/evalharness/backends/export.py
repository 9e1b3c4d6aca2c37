"""ONNX artefacts: the torch -> ONNX export and the graphs derived from an ONNX model.

Everything made here lives in the derived-model cache (backends/derived.py), keyed by the
content hash of the source model plus the settings and library versions that made it: a
new checkpoint, a replaced ONNX file or a new exporter gives a new file; the same inputs
never re-export, and nothing is written beside the user's file.

Normalization in the graph is added by prepending Sub/Div nodes to the model's real input
(what a deployment engineer does to an existing ONNX file), not by re-exporting. fp16 uses
onnxconverter-common (the maintained converter), keeping float32 inputs and outputs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from evalharness.backends.base import IOInfo
from evalharness.backends.derived import derived_file
from evalharness.hashing import file_sha256
from evalharness.models.source import ModelSpec, build_torch_model

OPSET = 17
INPUT_NAME = "input"
DEFAULT_OUTPUT = "logits"
# onnx.TensorProto element types (FLOAT, FLOAT16, UINT8, INT64): the numbers, so that this
# module imports without onnx (it is imported when the runtimes are registered)
_ONNX_TYPES = {1: "float32", 10: "float16", 2: "uint8", 7: "int64"}


def _io(value) -> IOInfo:
    t = value.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
    return IOInfo(value.name, shape, _ONNX_TYPES.get(t.elem_type, str(t.elem_type)))


def onnx_signature(path: Path) -> tuple[list[IOInfo], list[IOInfo]]:
    """The model's real inputs (initializers excluded) and outputs, with shapes and types."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ValueError(f"{path} is not a readable ONNX model ({type(e).__name__})") from None
    inits = {i.name for i in model.graph.initializer}
    inputs = [_io(v) for v in model.graph.input if v.name not in inits]
    if not inputs:
        raise ValueError(f"{path}: the ONNX graph has no input")
    return inputs, [_io(v) for v in model.graph.output]


def torch_output_names(spec: ModelSpec) -> list[str]:
    """Names the exported graph gives the torch module's outputs, in the module's order."""
    return [name for _, name in spec.outputs] or [DEFAULT_OUTPUT]


def export_onnx(spec: ModelSpec, cache_dir: str | Path) -> Path:
    """The plain fp32 ONNX of the model (input NCHW float32, dynamic batch).

    An `onnx`-source model is its own export and is returned as it is.
    """
    import onnx
    import torch

    if spec.source == "onnx":
        return spec.weights
    if not spec.has_torch_module:
        raise ValueError(f"model '{spec.name}' ({spec.source}) cannot be exported to ONNX")
    if spec.input_hw is None:
        raise ValueError(f"model '{spec.name}': exporting needs card.input_size")
    names = torch_output_names(spec)
    payload = dict(
        kind="export",
        weights=spec.weights_sha256,
        builder=spec.builder,
        size=list(spec.input_hw),
        outputs=names,
        opset=OPSET,
        torch=torch.__version__,
        onnx=onnx.__version__,
    )

    def build(tmp: Path) -> None:
        module = build_torch_model(spec)
        dummy = torch.zeros(1, 3, *spec.input_hw)
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
                output_names=names,
                dynamic_axes={INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in names}},
            )
        onnx.checker.check_model(str(tmp))

    return derived_file(cache_dir, "onnx", payload, ".onnx", build, stem=spec.name)


def with_graph_normalization(src: Path, cache_dir: str | Path, mean, std) -> Path:
    """A copy of `src` whose input takes raw 0..255 pixels: x -> (x - 255 mean) / (255 std)."""
    import onnx
    from onnx import helper, numpy_helper

    inputs, _ = onnx_signature(src)
    if inputs[0].dtype != "float32":
        raise ValueError(
            f"{src.name}: norm 'graph' needs a float32 input, '{inputs[0].name}' is "
            f"{inputs[0].dtype}"
        )
    payload = dict(
        kind="graphnorm",
        source=file_sha256(src),
        mean=list(mean),
        std=list(std),
        onnx=onnx.__version__,
    )

    def build(tmp: Path) -> None:
        model = onnx.load(str(src))
        graph = model.graph
        name, inner = inputs[0].name, "eh_normalized"
        for node in graph.node:  # route the input's consumers to the normalized tensor
            node.input[:] = [inner if n == name else n for n in node.input]
        for out in graph.output:  # an input passed straight through stays the raw input
            if out.name == name:
                raise ValueError(f"{src.name}: input '{name}' is also an output")
        mean255 = (np.asarray(mean, np.float32) * 255).reshape(1, 3, 1, 1)
        std255 = (np.asarray(std, np.float32) * 255).reshape(1, 3, 1, 1)
        graph.initializer.extend(
            [numpy_helper.from_array(mean255, "eh_mean"), numpy_helper.from_array(std255, "eh_std")]
        )
        nodes = [
            helper.make_node("Sub", [name, "eh_mean"], ["eh_centered"], name="eh_sub_mean"),
            helper.make_node("Div", ["eh_centered", "eh_std"], [inner], name="eh_div_std"),
        ]
        for n in reversed(nodes):
            graph.node.insert(0, n)
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))

    return derived_file(cache_dir, "onnx", payload, ".onnx", build, stem=f"{src.stem}-graphnorm")


def to_float16(src: Path, cache_dir: str | Path) -> Path:
    """A float16 copy of an fp32 ONNX model with fp32 input and output (Casts at both ends).

    onnxconverter-common converts weights, constants and op types to float16 (keeping ops
    without fp16 kernels in float32), so the graph computes in half precision as an fp16
    deployment does; the interface stays float32 so the host pipeline is unchanged.
    """
    import onnx
    from onnxconverter_common import __version__ as occ_version
    from onnxconverter_common.float16 import convert_float_to_float16

    payload = dict(kind="fp16", source=file_sha256(src), occ=occ_version, onnx=onnx.__version__)

    def build(tmp: Path) -> None:
        model = onnx.load(str(src))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # it warns for every value it clamps to fp16 range
            half = convert_float_to_float16(model, keep_io_types=True)
        onnx.save(half, str(tmp))

    return derived_file(cache_dir, "onnx", payload, ".onnx", build, stem=f"{src.stem}-fp16")


def without_value_info(src: Path, cache_dir: str | Path) -> Path:
    """A copy of `src` without `graph.value_info` (the intermediate shapes an exporter
    recorded). The values are hints, not part of the computation: removing them changes no
    output. Some runtimes cannot unify the hints with their own shape analysis (tract on
    PP-OCRv6: "Impossible to unify Sym(DynamicDimension.0) with Val(1)") and load the copy."""
    import onnx

    payload = dict(kind="no_value_info", source=file_sha256(src), onnx=onnx.__version__)

    def build(tmp: Path) -> None:
        model = onnx.load(str(src))
        del model.graph.value_info[:]
        onnx.save(model, str(tmp))

    return derived_file(cache_dir, "onnx", payload, ".onnx", build, stem=f"{src.stem}-novi")


def has_value_info(src: Path) -> bool:
    import onnx

    return len(onnx.load(str(src), load_external_data=False).graph.value_info) > 0
