"""The output shape guard, and the runtimes an image-to-image model is checked on outside
the engine (torch, onnxruntime, OpenVINO, ncnn: the figures script and the core tests).

Every runner is a model function (1, C, h, w) float32 -> (1, C', h*s, w*s) float32, so
tiling, padding and the metrics treat them alike. The export with dynamic height and width
is `backends/export.py::export_module_any_size` (the engine's backends use it too).

The shape guard exists because a runtime can return a wrong size without an error (the
data README records OpenVINO returning 288x288 for a 70x70 DITN input, and 256x256 from a
legacy export at other sizes; with torch 2.14.1 and OpenVINO 2026.4.1 here both raise
instead, but the next exporter or runtime version may not): an output whose size is not
scale x input is an error naming both sizes, and so is a NaN or an Inf.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ModelFn = Callable[[np.ndarray], np.ndarray]
# ncnn's ModelBin tag in front of a weight blob stored as fp16 (0x01306B47, little-endian).
NCNN_FP16_TAG = 0x01306B47
NCNN_TAGS = {NCNN_FP16_TAG: "fp16", 0x000D4B38: "int8", 0: "fp32"}


class OutputCheckError(ValueError):
    """A runtime returned an output that cannot be the model's answer for this input."""


def check_output(
    out: np.ndarray, in_hw: Sequence[int], scale: int, channels: int | None = None
) -> None:
    """Raise OutputCheckError unless `out` is (1, C, scale*h, scale*w) and finite."""
    h, w = int(in_hw[0]), int(in_hw[1])
    if out.ndim != 4 or out.shape[0] != 1:
        raise OutputCheckError(f"output shape {tuple(out.shape)}, expected (1, C, H, W)")
    oh, ow = out.shape[2], out.shape[3]
    if (oh, ow) != (h * scale, w * scale):
        raise OutputCheckError(
            f"output {oh}x{ow}, expected {h * scale}x{w * scale} (scale {scale} x input {h}x{w})"
        )
    if channels is not None and out.shape[1] != channels:
        raise OutputCheckError(f"output has {out.shape[1]} channels, expected {channels}")
    finite = np.isfinite(out)
    if not finite.all():
        n_nan = int(np.isnan(out).sum())
        raise OutputCheckError(
            f"output has {n_nan} NaN and {int((~finite).sum()) - n_nan} Inf values "
            f"of {out.size} (input {h}x{w})"
        )


def guarded(fn: ModelFn, scale: int, channels: int | None = None) -> ModelFn:
    """`fn` with the shape/finiteness guard applied to every call."""

    def run(x: np.ndarray) -> np.ndarray:
        out = fn(x)
        check_output(out, x.shape[2:], scale, channels)
        return out

    return run


def fp16_onnx(src: str | Path, dst: str | Path) -> Path:
    """An fp16 copy of an ONNX model (onnxconverter-common, keep_io_types: the graph still
    takes and returns float32, so it is a drop-in for the same runner)."""
    import onnx
    from onnxconverter_common import float16

    model = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return Path(dst)


def torch_runner(model: Any, dtype: str = "float32") -> ModelFn:
    """The torch module as a model function, computing in `dtype` (float32, bfloat16,
    float16) with float32 in and out; the module is copied, not converted in place."""
    import torch

    torch_dtype = getattr(torch, dtype)
    module = model if torch_dtype == torch.float32 else copy.deepcopy(model).to(torch_dtype)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = module(torch.from_numpy(np.ascontiguousarray(x)).to(torch_dtype))
        return out.float().numpy()

    return run


class OrtRunner:
    """onnxruntime on CPU with a fixed thread count (timings and results are per-config)."""

    def __init__(self, path: str | Path, threads: int = 2) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # FATAL only: a failing node is reported by the exception, not twice on stderr.
        options.log_severity_level = 4
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

        self.path = Path(path)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x)})[0]

    @property
    def precision_ran(self) -> str:
        """What the CPU provider computes in, read from the graph it really runs.

        Measured: an fp16 ONNX (onnxconverter-common) on the CPU provider comes out of ORT's
        optimizer with every initializer back in fp32 and fp32 NCHWc convolutions, i.e.
        fp16-rounded weights with fp32 arithmetic (ONNX ops take one element type, so an
        op with fp32 weights computes in fp32). A Cast to fp16 may survive in front of data
        movement (a tiny net's final Slice), rounding what passes through it; counted."""
        import onnx

        source = onnx.load(str(self.path), load_external_data=False)
        had_fp16 = any(t.data_type == onnx.TensorProto.FLOAT16 for t in source.graph.initializer)
        graph = _ort_optimized_graph(self.path)
        fp16_inits = sum(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer)
        fp16_casts = sum(
            n.op_type == "Cast" and any(a.i == onnx.TensorProto.FLOAT16 for a in n.attribute)
            for n in graph.node
        )
        kept = f"; {fp16_casts} casts to fp16 kept" if fp16_casts else ""
        if fp16_inits:
            return f"fp16 ({fp16_inits} fp16 weights kept{kept})"
        return f"fp32 (fp16 weights upcast{kept})" if had_fp16 else f"fp32{kept}"


def _ort_optimized_graph(path: Path) -> Any:
    """The graph onnxruntime's CPU provider executes after its optimizations."""
    import tempfile

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # the "hardware specific" note on saving is expected
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath).graph


class OpenVinoRunner:
    """OpenVINO on CPU with a precision hint ("f32", "bf16", "f16", or None for the plugin's
    default) and what really ran, read back from the compiled model.

    The default hint is not f32 on every CPU: where the CPU has bf16 (AVX512_BF16/AMX) the
    plugin compiles bf16 unless told f32, and whether an "f16" hint runs f16 depends on
    AVX512_FP16. `precision_ran` and `layer_precisions` are therefore read back, never
    assumed."""

    def __init__(self, path: str | Path, hint: str | None = "f32", threads: int = 2) -> None:
        import openvino as ov

        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads}
        if hint is not None:
            config["INFERENCE_PRECISION_HINT"] = hint
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()

    @property
    def precision_ran(self) -> str:
        """The inference precision the compiled model reports (e.g. "bf16", "f32")."""
        return self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()

    def layer_precisions(self, layer_types: Sequence[str] = ("Convolution",)) -> Counter:
        """Counter of (layer type, runtime precision) over the executed graph's layers of
        `layer_types`: evidence per layer, beyond the model-wide property."""
        counts: Counter = Counter()
        for op in self.compiled.get_runtime_model().get_ops():
            info = op.get_rt_info()
            if "layerType" not in info or "runtimePrecision" not in info:
                continue
            kind = info["layerType"].astype(str)
            if kind in layer_types:
                counts[(kind, info["runtimePrecision"].astype(str))] += 1
        return counts

    def __call__(self, x: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: np.ascontiguousarray(x)})
        return np.array(result[self.compiled.output(0)], copy=True)


def read_ncnn_blobs(param: str | Path) -> tuple[list[str], list[str]]:
    """(input blobs, output blobs) of an ncnn .param: the tops of Input layers, and the
    blobs that some layer produces and none consumes, in file order."""
    rows = [line.split() for line in Path(param).read_text().splitlines() if line.strip()]
    if not rows or rows[0][0] != "7767517":
        raise ValueError(f"{param} is not an ncnn .param file (no 7767517 magic)")
    inputs: list[str] = []
    produced: list[str] = []
    consumed: set[str] = set()
    for fields in rows[2:]:
        n_in, n_out = int(fields[2]), int(fields[3])
        bottoms, tops = fields[4 : 4 + n_in], fields[4 + n_in : 4 + n_in + n_out]
        consumed.update(bottoms)
        produced += tops
        if fields[0] == "Input":
            inputs += tops
    return inputs, [blob for blob in produced if blob not in consumed]


def ncnn_weight_storage(bin_path: str | Path) -> str:
    """How the first weight blob of an ncnn .bin is stored ("fp16", "fp32", "int8"), from
    ModelBin's 4-byte tag (a pair converted with fp16 weights starts with 0x01306B47)."""
    tag = int.from_bytes(Path(bin_path).read_bytes()[:4], "little")
    return NCNN_TAGS.get(tag, f"untagged (0x{tag:08x})")


class NcnnRunner:
    """An ncnn .param/.bin pair, blob names read from the .param; `fp16` switches ncnn's
    fp16 storage/packed/arithmetic options together (ncnn's own default is on)."""

    def __init__(
        self, param: str | Path, bin_path: str | Path, fp16: bool = False, threads: int = 2
    ) -> None:
        import ncnn

        self.net = ncnn.Net()
        self.net.opt.num_threads = threads
        self.net.opt.use_vulkan_compute = False
        for option in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic"):
            setattr(self.net.opt, option, fp16)
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(bin_path)) != 0:
            raise ValueError(f"ncnn cannot load {param} / {bin_path}")
        inputs, outputs = read_ncnn_blobs(param)
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{param}: expected one input and one output, got {inputs}, {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self._mat = ncnn.Mat

    def __call__(self, x: np.ndarray) -> np.ndarray:
        outs = []
        for chw in x:  # ncnn takes one C x H x W Mat at a time
            extractor = self.net.create_extractor()
            extractor.input(self.input_name, self._mat(np.ascontiguousarray(chw)))
            status, mat = extractor.extract(self.output_name)
            if status != 0:
                raise RuntimeError(f"ncnn extract({self.output_name}) returned {status}")
            outs.append(np.array(mat, dtype=np.float32, copy=True))
        return np.stack(outs)


@dataclass(frozen=True)
class SizeCheck:
    """One runtime at one input size: did it run, with the right size, and how close."""

    height: int
    width: int
    ok: bool
    detail: str  # the error's first line, or "max |diff| ..." against the reference
    max_abs: float = float("nan")


def check_size(
    fn: ModelFn, reference: ModelFn, hw: tuple[int, int], scale: int, channels: int, seed: int = 0
) -> SizeCheck:
    """Run `fn` and `reference` on one seeded random input of size `hw`: any exception, a
    wrong output size or a non-finite value is a failed check with the reason."""
    x = np.random.default_rng(seed).random((1, channels, *hw), dtype=np.float32)
    try:
        out = fn(x)
        check_output(out, hw, scale, channels)
    except Exception as err:  # a runtime's failure is the measured result
        return SizeCheck(hw[0], hw[1], False, f"{type(err).__name__}: {error_reason(err)}")
    max_abs = float(np.max(np.abs(out - reference(x))))
    return SizeCheck(hw[0], hw[1], True, f"max |diff| {max_abs:.2g}", max_abs)


def error_reason(err: Exception) -> str:
    """The informative part of a runtime's error, for a one-line report: OpenVINO's first
    lines only name the C++ file that rethrew (the node and check come later), and
    onnxruntime's one line is mostly source paths and C++ signatures."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith("Exception from")]
    text = " ".join(useful or lines or [type(err).__name__])
    for noise in _ERROR_NOISE:
        text = noise.sub("", text)
    return " ".join(text.split())[:300]


_ERROR_NOISE = (
    re.compile(r"\S+\.(?:h|hpp|cc|cpp):\d+:?"),  # C++ source locations
    re.compile(r"\w+(?:::\w+)+\([^)]*\)(?: const)?"),  # C++ signatures
    re.compile(r"\[ONNXRuntimeError\] : \d+ : \w+ : Non-zero status code returned while "),
)
