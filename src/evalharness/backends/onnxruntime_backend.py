"""ONNX Runtime CPU execution provider on the project's own export of the torch model."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from evalharness.backends.base import BACKENDS, ModelVariant
from evalharness.backends.export import export_onnx, to_float16, with_graph_normalization


class OrtSession:
    def __init__(self, path: str, threads: int) -> None:
        opts = ort.SessionOptions()
        # Fixed thread counts: the same sweep on the same machine gives the same bits.
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.input = self.sess.get_inputs()[0].name

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.sess.run(None, {self.input: batch})[0].astype(np.float32, copy=False)


@BACKENDS.register("onnxruntime")
class OnnxRuntimeBackend:
    name = "onnxruntime"

    def load(self, variant: ModelVariant, cache_dir: str) -> OrtSession:
        if variant.placement == "ov_ppp":
            raise ValueError("norm placement 'ov_ppp' exists only on backend 'openvino'")
        if variant.precision not in ("fp32", "fp16"):
            raise ValueError(f"precision '{variant.precision}' is not available on onnxruntime")
        path = export_onnx(variant.model, cache_dir)
        if variant.placement == "graph":
            path = with_graph_normalization(path, variant.mean, variant.std)
        if variant.precision == "fp16":
            path = to_float16(path)
        return OrtSession(str(path), variant.threads)

    def versions(self) -> dict[str, str]:
        return {"onnxruntime": ort.__version__}
