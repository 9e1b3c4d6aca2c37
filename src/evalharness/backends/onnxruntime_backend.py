"""ONNX Runtime on the project's own export of the torch model, or on the user's ONNX file."""

from __future__ import annotations

import numpy as np

from evalharness.backends.base import (
    BACKENDS,
    Capabilities,
    IOInfo,
    ModelVariant,
    as_float32_outputs,
)
from evalharness.backends.export import (
    export_onnx,
    to_float16,
    with_graph_normalization,
)

PROVIDERS = {"cpu": ["CPUExecutionProvider"]}


def onnx_for_variant(variant: ModelVariant, cache_dir: str):
    """The ONNX file a variant runs: export, then graph normalization, then fp16, as asked."""
    path = export_onnx(variant.model, cache_dir)
    if variant.placement == "graph":
        path = with_graph_normalization(path, cache_dir, variant.mean, variant.std)
    if variant.precision == "fp16":
        path = to_float16(path, cache_dir)
    return path


class OrtSession:
    def __init__(self, path: str, variant: ModelVariant) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # Fixed thread counts: the same sweep on the same machine gives the same bits.
        opts.intra_op_num_threads = variant.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        try:
            self.sess = ort.InferenceSession(path, opts, providers=PROVIDERS[variant.device])
        except Exception as e:  # ORT raises its own exception types on a bad model
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            raise ValueError(
                f"onnxruntime cannot load {path}: {type(e).__name__}: {first}"
            ) from None
        meta = self.sess.get_inputs()[0]
        shape = tuple(d if isinstance(d, int) else None for d in meta.shape)
        self.input = IOInfo(meta.name, shape)
        self.output_names = [o.name for o in self.sess.get_outputs()]
        self.precision_ran = variant.precision
        self.notes: tuple[str, ...] = ()
        if self.input.fixed_batch:
            self.notes = (f"fixed batch {self.input.fixed_batch}: run that many at a time",)

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.sess.run(None, {self.input.name: batch})
        return as_float32_outputs(self.output_names, outs)


@BACKENDS.register("onnxruntime")
class OnnxRuntimeBackend:
    name = "onnxruntime"
    capabilities = Capabilities(
        sources=("torch", "torchvision", "onnx"),
        placements=("host", "graph"),
        precisions=("fp32", "fp16"),
        devices=("cpu",),
        requires=("onnxruntime",),
    )

    def load(self, variant: ModelVariant, cache_dir: str) -> OrtSession:
        return OrtSession(str(onnx_for_variant(variant, cache_dir)), variant)

    def versions(self) -> dict[str, str]:
        import onnxruntime as ort

        return {"onnxruntime": ort.__version__}
