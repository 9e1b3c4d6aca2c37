"""OpenVINO CPU plugin, reading the project's ONNX export.

`ov_ppp` placement builds the input side with OpenVINO's PrePostProcessor: the host sends
uint8 NHWC pixels and the compiled model converts to f32, transposes to NCHW and applies
mean/scale itself. The inference precision is always set explicitly: on CPUs with bf16 or
AMX support OpenVINO otherwise silently runs in bf16.
"""

from __future__ import annotations

import numpy as np
import openvino as ov
from openvino.preprocess import PrePostProcessor

from evalharness.backends.base import BACKENDS, ModelVariant
from evalharness.backends.export import export_onnx, with_graph_normalization

_HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}
_EFFECTIVE = {str(ov.Type.f32): "fp32", str(ov.Type.f16): "fp16", str(ov.Type.bf16): "bf16"}


def add_ppp_normalization(model: ov.Model, mean, std) -> ov.Model:
    ppp = PrePostProcessor(model)
    inp = ppp.input()
    inp.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    inp.model().set_layout(ov.Layout("NCHW"))
    inp.preprocess().convert_element_type(ov.Type.f32).mean([m * 255.0 for m in mean]).scale(
        [s * 255.0 for s in std]
    )
    return ppp.build()


class OpenVinoSession:
    def __init__(self, compiled: ov.CompiledModel) -> None:
        self.request = compiled.create_infer_request()
        # What the plugin actually runs: a CPU without f16/bf16 support silently runs f32.
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        self.effective_precision = _EFFECTIVE.get(str(hint), str(hint))

    def infer(self, batch: np.ndarray) -> np.ndarray:
        out = self.request.infer({0: batch})
        return np.asarray(next(iter(out.values())), dtype=np.float32)


@BACKENDS.register("openvino")
class OpenVinoBackend:
    name = "openvino"

    def load(self, variant: ModelVariant, cache_dir: str) -> OpenVinoSession:
        core = ov.Core()
        if variant.model.source == "openvino":  # an IR: read as it is
            path = variant.model.weights
        else:
            path = export_onnx(variant.model, cache_dir)
            if variant.placement == "graph":
                path = with_graph_normalization(path, variant.mean, variant.std)
        model = core.read_model(str(path))
        if variant.placement == "ov_ppp":
            model = add_ppp_normalization(model, variant.mean, variant.std)
        config = {
            "INFERENCE_PRECISION_HINT": _HINTS[variant.precision],
            "INFERENCE_NUM_THREADS": variant.threads,
            "NUM_STREAMS": 1,
        }
        return OpenVinoSession(core.compile_model(model, "CPU", config))

    def versions(self) -> dict[str, str]:
        return {"openvino": ov.get_version()}
