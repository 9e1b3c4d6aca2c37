"""ONNX artefacts: the torch -> ONNX export and the graphs derived from an ONNX model.

Everything made here lives in the derived-model cache (backends/derived.py), keyed by the
content hash of the source model plus the settings and library versions that made it: a
new checkpoint, a replaced ONNX file or a new exporter gives a new file; the same inputs
never re-export, and nothing is written beside the user's file.

Normalization in the graph is added by prepending Sub/Div nodes to the model's real input
(what a deployment engineer does to an existing ONNX file), not by re-exporting. fp16 uses
onnxconverter-common (the maintained converter), keeping float32 inputs and outputs.

A model that takes any size (card input_size null: upscalers, denoisers) is exported with
dynamic height and width by `export_module_any_size`. What was measured on DITN (transformer
SR, size multiple 8, pads itself inside forward) decides how:
- the legacy (TorchScript) exporter bakes the traced size into Reshape constants: a model
  traced at 64x64 runs 64x64 only (72x72 and 70x70 raise in a Reshape in onnxruntime and
  OpenVINO 2026.4 alike);
- the dynamo exporter with dynamic dims keeps the sizes symbolic, but the size it traces
  decides which branch of `if pad_h or pad_w` is kept: traced at a multiple of 8 the
  padding is dropped and non-multiples raise in a Reshape; traced at a size that is *not*
  a multiple, the padding stays in the graph and 64, 72 and 70 all run. So the export
  traces at two different primes no size multiple divides (`odd_size`), with the dynamo
  exporter; convolutional models (Compact, DnCNN) export either way.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from evalharness.backends.base import IOInfo
from evalharness.backends.derived import derived_file
from evalharness.hashing import file_sha256
from evalharness.models.sizes import odd_hw
from evalharness.models.source import ModelSpec, build_torch_model

OPSET = 17
INPUT_NAME = "input"
DEFAULT_OUTPUT = "logits"
# onnx.TensorProto element types (FLOAT, FLOAT16, UINT8, INT64): the numbers, so that this
# module imports without onnx (it is imported when the runtimes are registered)
_ONNX_TYPES = {1: "float32", 10: "float16", 2: "uint8", 7: "int64"}
Exporter = Literal["legacy", "dynamo"]


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

    own = spec.file_for("onnx")  # the user's ONNX file, or their converted copy
    if own is not None:
        return own
    if not spec.has_torch_module:
        raise ValueError(f"model '{spec.name}' ({spec.source}) cannot be exported to ONNX")
    if spec.input_hw is None:
        return export_any_size(spec, cache_dir)
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


def export_any_size(spec: ModelSpec, cache_dir: str | Path) -> Path:
    """The fp32 ONNX of a model that takes any size: batch 1, dynamic height and width,
    traced by the dynamo exporter at sizes the size multiple does not divide (module doc)."""
    import onnx
    import torch

    names = torch_output_names(spec)
    multiple = spec.size_multiple
    example = odd_hw(multiple)
    payload = dict(
        kind="export_any_size",
        weights=spec.weights_sha256,
        builder=spec.builder,
        source=spec.source,
        channels=spec.channels,
        example=list(example),
        multiple=multiple,
        outputs=names,
        torch=torch.__version__,
        onnx=onnx.__version__,
    )

    def build(tmp: Path) -> None:
        module = build_torch_model(spec)
        export_module_any_size(module, tmp, spec.channels, "dynamo", example, multiple,
                               output_names=names)  # fmt: skip
        onnx.checker.check_model(str(tmp))

    return derived_file(cache_dir, "onnx", payload, ".onnx", build, stem=spec.name)


def export_module_any_size(
    model: Any,
    path: str | Path,
    channels: int,
    exporter: Exporter = "legacy",
    example_hw: tuple[int, int] | None = None,
    multiple: int = 1,
    opset: int = 17,
    output_names: list[str] | None = None,
) -> Path:
    """Export a torch image model to ONNX with dynamic H and W ("input" -> "output", or
    the names given).

    `example_hw` is the traced size; by default two different primes that `multiple` does
    not divide (see the module docstring for why that matters to the dynamo exporter, and
    distinct so no exporter can assume a square input). `opset` applies to the legacy
    exporter; the dynamo exporter picks its own (18 or later)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if example_hw is None:
        example_hw = odd_hw(multiple)
    x = torch.rand(1, channels, *example_hw)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings on Python ints are expected here
        names = list(output_names or ["output"])
        if exporter == "legacy":
            _export_legacy(model, x, path, opset, names)
        elif exporter == "dynamo":
            _export_dynamo(model, x, path, max(2, multiple), names)
        else:
            raise ValueError(f"unknown exporter {exporter!r} (legacy or dynamo)")
    return path


def _export_legacy(model: Any, x: Any, path: Path, opset: int, names: list[str]) -> None:
    import torch

    axes = {"input": {2: "height", 3: "width"}}
    axes.update({n: {2: f"{n}_height", 3: f"{n}_width"} for n in names})
    torch.onnx.export(
        model,
        (x,),
        str(path),
        dynamo=False,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=names,
        dynamic_axes=axes,
    )


def _export_dynamo(model: Any, x: Any, path: Path, min_size: int, names: list[str]) -> None:
    """Dims start at the size multiple: a model that reflect-pads itself cannot take sizes
    below it, and with min=2 torch.export's constraint solver fails on that (measured:
    "Cannot create Dim with inconsistent min=0, max=-oo" for a net padding to 4)."""
    import torch

    dims = {
        2: torch.export.Dim("height", min=min_size),
        3: torch.export.Dim("width", min=min_size),
    }
    # the exporter and onnxscript's optimizer print progress ("No unused functions to
    # remove", ...) on stdout and through logging: the library never prints
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet), _no_logs():
        _dynamo_program(model, x, dims, names).save(str(path))


@contextlib.contextmanager
def _no_logs():
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _dynamo_program(model: Any, x: Any, dims: dict, names: list[str]) -> Any:
    import torch

    return torch.onnx.export(
        model,
        (x,),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=names,
        dynamic_shapes=(dims,),
        verbose=False,
    )


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
