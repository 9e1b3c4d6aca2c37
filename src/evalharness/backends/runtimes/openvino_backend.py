"""OpenVINO, reading the project's ONNX export, the user's ONNX file or an IR.

`ov_ppp` placement builds the input side with OpenVINO's PrePostProcessor: the host sends
uint8 NHWC pixels and the compiled model converts to f32, transposes to NCHW and applies
mean/scale itself. An `ov_ppp_*` resize value (variant option `ppp_resize`) adds a
PrePostProcessor resize: the host sends the image at its own size and the compiled model
resamples it to the graph's input size. The inference precision is always set explicitly:
on CPUs with bf16 or AMX support OpenVINO otherwise silently runs in bf16. A model with a
fixed batch of 1 is reshaped to a dynamic batch when OpenVINO allows it (the session notes
say so).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from evalharness.backends.base import (
    BACKENDS,
    BaseBackend,
    Capabilities,
    IOInfo,
    ModelVariant,
    module_version,
)
from evalharness.backends.quantize import Timer, quantize_nncf, quantize_ort
from evalharness.backends.variants import float_onnx_for_variant
from evalharness.optional import error_line
from evalharness.preprocess.ppp import add_ppp, cpu_streams

# precision `default` sets no hint: what a user who sets nothing gets (bf16 on CPUs with
# AVX512_BF16/AMX); precision_ran then says what the plugin chose
_HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "default": None}
_EFFECTIVE = {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}
# device values of the sweep -> OpenVINO device strings (variant option `ov_device` wins)
_DEVICES = {"cpu": "CPU", "gpu": "GPU"}


def _shape(partial) -> tuple[int | None, ...]:
    return tuple(d.get_length() if d.is_static else None for d in partial)


def free_fixed_batch(model) -> str | None:
    """Make a fixed batch of 1 dynamic when OpenVINO can; a note saying what happened."""
    import openvino as ov

    inp = model.inputs[0]
    shape = inp.get_partial_shape()
    if shape.rank.is_dynamic or not shape[0].is_static or shape[0].get_length() != 1:
        return None
    new = ov.PartialShape([ov.Dimension(), *list(shape)[1:]])
    try:
        model.reshape({inp.get_any_name(): new})
    except Exception:  # reshape-unfriendly graph: run it one image at a time
        return "fixed batch 1: one image at a time (the model cannot be reshaped)"
    # A constant Reshape (to (1, 1000, 1, 1), say) keeps an output at batch 1 while the
    # input is free: such a graph would fail, or mix images, at any other batch size.
    if any(_output_batch_fixed(out.get_partial_shape()) for out in model.outputs):
        model.reshape({inp.get_any_name(): shape})
        return "fixed batch 1: one image at a time (an output keeps batch 1)"
    return "fixed batch 1 reshaped to a dynamic batch"


def _output_batch_fixed(shape) -> bool:
    return shape.rank.is_static and len(shape) > 0 and shape[0].is_static


def check_device(core, device: str) -> None:
    """One line when OpenVINO has no such device here (compile_model's error is a page)."""
    if device.split(":")[0] in ("AUTO", "HETERO", "MULTI", "BATCH"):
        return  # virtual devices name others; OpenVINO checks those
    available = core.available_devices
    if device not in available and device.split(".")[0] not in available:
        raise ValueError(
            f"OpenVINO device '{device}' is not available here (it sees {', '.join(available)})"
        )


class OpenVinoSession:
    thread_safe = True  # one infer request per thread on a shared compiled model
    build_seconds = 0.0

    def __init__(self, compiled, notes: tuple[str, ...]) -> None:
        self.compiled = compiled
        self._local = threading.local()
        inp = compiled.inputs[0]
        self.input = IOInfo(inp.get_any_name(), _shape(inp.get_partial_shape()))
        self.output_names = []
        for i, out in enumerate(compiled.outputs):
            try:
                self.output_names.append(out.get_any_name())
            except RuntimeError:  # an output without a tensor name
                self.output_names.append(f"output{i}")
        # What the plugin actually runs: a CPU without f16/bf16 support silently runs f32.
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        # an ov.Type in recent OpenVINO (str() gives "<Type: 'float32'>"), a string before
        hint = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        self.precision_ran = _EFFECTIVE.get(hint, hint)
        self.notes = notes

    @property
    def request(self):
        if not hasattr(self._local, "request"):
            self._local.request = self.compiled.create_infer_request()
        return self._local.request

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        res = self.request.infer({0: batch})
        out = {}
        for name, value in zip(self.output_names, res.values(), strict=True):
            a = np.asarray(value)
            out[name] = a.astype(np.float32, copy=False) if a.dtype.kind == "f" else a.copy()
        return out


@BACKENDS.register("openvino")
class OpenVinoBackend(BaseBackend):
    name = "openvino"
    capabilities = Capabilities(
        sources=("torch", "torchvision", "onnx", "openvino", "spandrel"),
        placements=("host", "graph", "ov_ppp"),
        precisions=("fp32", "fp16", "bf16", "default", "int8_ort", "int8_nncf"),
        layouts=("NCHW", "NHWC"),
        devices=("cpu", "gpu"),
        requires=("openvino",),
        reference_rank=2,
        probes=True,
    )

    def refuses(self, placement: str, precision: str, device: str, source: str) -> str | None:
        if precision.startswith("int8") and placement == "ov_ppp":
            return "int8 with norm 'ov_ppp' is not supported (calibrate with host or graph)"
        if source == "openvino" and placement == "graph":
            return "norm 'graph' needs an ONNX or torch model, not an IR"
        return None

    def device_missing(self, device: str) -> str | None:
        import openvino as ov

        try:
            check_device(ov.Core(), _DEVICES.get(device, device))
        except ValueError as e:
            return str(e)
        return None

    def _model_file(self, variant: ModelVariant, cache_dir: str, calibration, timer: Timer):
        """(the file OpenVINO reads, the float ONNX it was derived from or None for an IR)."""
        ir = variant.model.file_for("openvino")  # an IR (or the user's converted one): as is
        if ir is not None:
            if variant.placement == "graph":
                raise ValueError("norm 'graph' needs an ONNX or torch model, not an IR")
            path, float_onnx = ir, None
        else:
            path = float_onnx = float_onnx_for_variant(variant, cache_dir)
        if variant.precision.startswith("int8") and calibration is None:
            raise ValueError(f"precision {variant.precision} needs calibration images")
        if variant.precision == "int8_ort":  # the QDQ ONNX onnxruntime runs, read as int8
            path = quantize_ort(path, variant, calibration, cache_dir, timer)
        elif variant.precision == "int8_nncf":
            path = quantize_nncf(path, variant, calibration, cache_dir, timer)
        return path, float_onnx

    def load(self, variant: ModelVariant, cache_dir: str, calibration=None) -> OpenVinoSession:
        import openvino as ov

        core = ov.Core()
        timer = Timer()
        path, _ = self._model_file(variant, cache_dir, calibration, timer)
        try:
            model = core.read_model(str(path))
        except RuntimeError as e:  # its first lines say where, the cause comes after
            raise ValueError(f"OpenVINO cannot read {path}: {error_line(e)}") from None
        note = free_fixed_batch(model)
        resize = variant.option("ppp_resize")
        if variant.placement == "ov_ppp" or resize:
            model = add_ppp(model, variant.placement, variant.mean, variant.std, resize)
        device = variant.option("ov_device") or _DEVICES.get(variant.device, variant.device)
        streams = cpu_streams(variant.threads) if device == "CPU" else 1
        config = {
            **_precision(variant),
            "INFERENCE_NUM_THREADS": variant.threads * streams,
            "NUM_STREAMS": streams,
        }
        if config["INFERENCE_PRECISION_HINT"] is None:
            del config["INFERENCE_PRECISION_HINT"]
        check_device(core, device)
        try:
            compiled = core.compile_model(model, device, config)
        except RuntimeError as e:
            raise ValueError(
                f"OpenVINO cannot compile {path} for {device}: {error_line(e)}"
            ) from None
        session = OpenVinoSession(compiled, (note,) if note else ())
        if variant.precision.startswith("int8"):
            session.precision_ran = "int8"  # the f32 hint covers what int8 ops leave
        session.build_seconds = timer.seconds
        return session

    def versions(self) -> dict[str, str]:
        return {"openvino": module_version("openvino", "get_version")}

    def layer_probe(self, variant: ModelVariant, cache_dir: str, calibration=None):
        """The file `load` reads, compiled on the CPU with `load`'s inference precision and
        one stream of the variant's threads (each of `load`'s streams computes the same
        bits). ONNX names are kept by OpenVINO; an NNCF IR is read by the float export's
        names, after each FakeQuantize. The PrePostProcessor front is not probed."""
        from evalharness.layerwise.deploy import ProbeSource
        from evalharness.layerwise.probes import OpenVinoProbe

        if variant.placement == "ov_ppp" or variant.option("ppp_resize"):
            raise ValueError(
                "layers cannot probe norm 'ov_ppp' or an ov_ppp resize (the input side is "
                "OpenVINO's PrePostProcessor, not the host tensor): use norm host or graph"
            )
        device = variant.option("ov_device") or _DEVICES.get(variant.device, variant.device)
        if device != "CPU":
            raise ValueError(f"layers runs on the CPU; device '{variant.device}' is not probed")
        path, float_onnx = self._model_file(variant, cache_dir, calibration, Timer())
        config = {**_precision(variant), "INFERENCE_NUM_THREADS": variant.threads}

        def build(layers, mode: str) -> OpenVinoProbe:
            return OpenVinoProbe(path, layers, threads=variant.threads, config=config, mode=mode)

        names = Path(path) if Path(path).suffix == ".onnx" else float_onnx
        return ProbeSource(self.name, names, float_onnx, build, ("all", "each"),
                           _fixed_batch(path))  # fmt: skip


def _precision(variant: ModelVariant) -> dict[str, str]:
    """Always explicit: on CPUs with bf16 or AMX, OpenVINO otherwise runs bf16 silently."""
    return {"INFERENCE_PRECISION_HINT": _HINTS.get(variant.precision, "f32")}


def _fixed_batch(path) -> int | None:
    """The batch a model's input insists on (OpenVINO's reading of it), or None."""
    import openvino as ov

    shape = ov.Core().read_model(str(path)).inputs[0].get_partial_shape()
    if shape.rank.is_dynamic or not shape[0].is_static:
        return None
    return shape[0].get_length()
