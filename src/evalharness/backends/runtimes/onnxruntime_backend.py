"""ONNX Runtime on the project's own export of the torch model, or on the user's ONNX file.

Devices are execution providers: cpu (CPUExecutionProvider), cuda (CUDAExecutionProvider)
and tensorrt (TensorrtExecutionProvider; precision fp16 sets trt_fp16_enable on the fp32
graph, TensorRT choosing the layers). The GPU providers come with onnxruntime-gpu, which
replaces the pinned onnxruntime (README, GPUs). ONNX Runtime silently falls back to the CPU
when a GPU provider cannot start; the session refuses that instead, since every number in
the row would be labelled with a device that did not run it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evalharness.backends.base import (
    BACKENDS,
    BaseBackend,
    Capabilities,
    IOInfo,
    ModelVariant,
    as_float32_outputs,
    module_version,
)
from evalharness.backends.export import onnx_signature
from evalharness.backends.quantize import Timer
from evalharness.backends.variants import float_onnx_for_variant, onnx_for_variant
from evalharness.optional import error_line

# device value -> the execution provider that must run the graph
PROVIDER = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
GPU_INSTALL = "pip uninstall -y onnxruntime && pip install onnxruntime-gpu==1.31.1"


def provider_missing(device: str, available: list[str]) -> str | None:
    wanted = PROVIDER[device]
    if wanted in available:
        return None
    return (
        f"device '{device}' needs onnxruntime's {wanted}, this onnxruntime has "
        f"{', '.join(available)}: {GPU_INSTALL}"
    )


def providers(variant: ModelVariant, available: list[str]) -> list:
    """The provider list for the variant's device; one line naming the fix when absent."""
    wanted = PROVIDER[variant.device]
    why = provider_missing(variant.device, available)
    if why:
        raise ValueError(why)
    if variant.device == "cpu":
        return [wanted]
    if variant.device == "tensorrt":
        trt = {"trt_fp16_enable": variant.precision == "fp16"}
        return [(wanted, trt), "CUDAExecutionProvider", "CPUExecutionProvider"]
    return [wanted, "CPUExecutionProvider"]


class OrtSession:
    thread_safe = True  # InferenceSession.run may be called from several threads

    def __init__(self, path: str, variant: ModelVariant) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # Fixed thread counts: the same sweep on the same machine gives the same bits.
        opts.intra_op_num_threads = variant.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # FATAL only: a node that fails on one input (an image size an export cannot take)
        # is reported by the exception, as an error row, not a second time on stderr
        opts.log_severity_level = 4
        chosen = providers(variant, ort.get_available_providers())
        try:
            self.sess = ort.InferenceSession(path, opts, providers=chosen)
        except Exception as e:  # ORT raises its own exception types on a bad model
            first = error_line(e)
            raise ValueError(
                f"onnxruntime cannot load {path}: {type(e).__name__}: {first}"
            ) from None
        ran = self.sess.get_providers()[0]
        if ran != PROVIDER[variant.device]:
            raise ValueError(
                f"onnxruntime could not start {PROVIDER[variant.device]} for device "
                f"'{variant.device}' (it fell back to {ran}): check the CUDA/TensorRT libraries"
            )
        meta = self.sess.get_inputs()[0]
        shape = tuple(d if isinstance(d, int) else None for d in meta.shape)
        # A TF-born graph takes NHWC: the host sends NCHW, the session transposes (as LiteRT's)
        self.nhwc = len(shape) == 4 and shape[3] in (1, 3) and shape[1] not in (1, 3)
        if self.nhwc:
            shape = (shape[0], shape[3], shape[1], shape[2])
        self.input = IOInfo(meta.name, shape)
        self.output_names = [o.name for o in self.sess.get_outputs()]
        self.precision_ran = "int8" if variant.precision.startswith("int8") else variant.precision
        if variant.precision == "fp16" and variant.device == "cpu":
            self.precision_ran = cpu_fp16_ran(path)
        self.notes: tuple[str, ...] = ()
        self.build_seconds = 0.0
        if self.input.fixed_batch:
            self.notes = (f"fixed batch {self.input.fixed_batch}: run that many at a time",)
        if self.nhwc:
            self.notes += ("NHWC model: the session transposes the host's NCHW batch",)

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(batch.transpose(0, 2, 3, 1)) if self.nhwc else batch
        outs = self.sess.run(None, {self.input.name: x})
        return as_float32_outputs(self.output_names, outs)


def cpu_fp16_ran(path: str) -> str:
    """What the CPU provider computes an fp16 ONNX in, read from the graph it really runs.

    Measured (Real-ESRGAN Compact, onnxconverter-common's fp16 model): ORT's optimizer
    brings every initializer back to fp32 and runs fp32 (NCHWc) convolutions, since the CPU
    provider lacks fp16 kernels for them: fp16-rounded weights with fp32 arithmetic. A Cast
    to fp16 may survive in front of data movement, rounding what passes; it is counted."""
    import tempfile

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # the "hardware specific" note on saving is expected
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath).graph
    half = onnx.TensorProto.FLOAT16
    fp16_inits = sum(t.data_type == half for t in graph.initializer)
    casts = sum(
        n.op_type == "Cast" and any(a.name == "to" and a.i == half for a in n.attribute)
        for n in graph.node
    )
    kept = f"; {casts} casts to fp16 kept" if casts else ""
    if fp16_inits:
        return f"fp16 ({fp16_inits} fp16 weights kept{kept})"
    return f"fp32 (fp16 weights upcast{kept})"


@BACKENDS.register("onnxruntime")
class OnnxRuntimeBackend(BaseBackend):
    name = "onnxruntime"
    capabilities = Capabilities(
        sources=("torch", "torchvision", "onnx", "spandrel"),
        placements=("host", "graph"),
        precisions=("fp32", "fp16", "int8_ort"),
        devices=tuple(PROVIDER),
        requires=("onnxruntime",),
        reference_rank=1,
        probes=True,
    )

    def device_missing(self, device: str) -> str | None:
        import onnxruntime as ort

        return provider_missing(device, ort.get_available_providers())

    def model_file(self, variant: ModelVariant, cache_dir: str, calibration, timer: Timer):
        """The ONNX file the variant runs (what load() and layer_probe() both read)."""
        return onnx_for_variant(variant, cache_dir, calibration, timer)

    def load(self, variant: ModelVariant, cache_dir: str, calibration=None) -> OrtSession:
        timer = Timer()
        session = OrtSession(str(self.model_file(variant, cache_dir, calibration, timer)), variant)
        session.build_seconds = timer.seconds  # 0 when the quantized model was reused
        return session

    def versions(self) -> dict[str, str]:
        return {"onnx": module_version("onnx"), "onnxruntime": module_version("onnxruntime")}

    def layer_probe(self, variant: ModelVariant, cache_dir: str, calibration=None):
        """The file `load` runs, in a CPU session set up as OrtSession's (threads, all graph
        optimizations): the tensors become graph outputs (a QDQ model's quantized ones)."""
        from evalharness.layerwise.deploy import ProbeSource
        from evalharness.layerwise.probes import OrtProbe

        if variant.device != "cpu":
            raise ValueError(f"layers runs on the CPU; device '{variant.device}' is not probed")
        path = self.model_file(variant, cache_dir, calibration, Timer())

        def build(layers, mode: str) -> OrtProbe:
            return OrtProbe(path, layers, threads=variant.threads, mode=mode)

        fixed = onnx_signature(path)[0][0].fixed_batch  # run that many at a time, as load does
        return ProbeSource(self.name, path, float_onnx_for_variant(variant, cache_dir), build,
                           ("all", "each"), fixed)  # fmt: skip
