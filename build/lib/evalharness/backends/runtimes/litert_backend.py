"""LiteRT (TensorFlow Lite) on a `.tflite` file, or on a litert-torch conversion of the model.

The input layout is read from the model, never assumed: litert-torch keeps torch's NCHW;
models born in TensorFlow take NHWC. The host always sends NCHW; for an NHWC model the
session transposes the batch itself (its notes say so). A dynamic batch (shape signature -1)
is resized to each batch size as it comes; a fixed batch is fed that many at a time by the
evaluation loop. A quantized input or output (uint8/int8 with a scale) is quantized and
dequantized with the model's own parameters, as the TFLite examples do.

Converting a torch model needs litert-torch, a heavy optional extra (`litert-convert`); the
conversion lands in the derived cache (backends/litert_convert.py).
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
    dist_version,
)
from evalharness.optional import require

_EXTRA = "litert"


def _is_nhwc(shape: tuple[int, ...]) -> bool:
    """A 4-d image input whose last axis holds the channels (1 or 3) and second does not."""
    return len(shape) == 4 and shape[3] in (1, 3) and shape[1] not in (1, 3)


class LiteRtSession:
    thread_safe = False  # one inference at a time (the engine serializes calls)
    build_seconds = 0.0

    def __init__(self, path: Path, variant: ModelVariant) -> None:
        interp_mod = require("ai_edge_litert.interpreter", "backend 'litert'", _EXTRA)
        try:
            self.interp = interp_mod.Interpreter(model_path=str(path), num_threads=variant.threads)
        except (ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            raise ValueError(f"LiteRT cannot load {path}: {first}") from None
        details = self.interp.get_input_details()
        if len(details) != 1:
            raise ValueError(f"{path.name}: litert feeds one input, the model has {len(details)}")
        self.in_detail = details[0]
        self.out_details = self.interp.get_output_details()
        shape = tuple(int(d) for d in self.in_detail["shape"])
        signature = tuple(int(d) for d in self.in_detail.get("shape_signature", shape))
        self.nhwc = _is_nhwc(shape)
        n, c, h, w = (shape[0], shape[3], shape[1], shape[2]) if self.nhwc else shape
        dynamic = bool(signature) and signature[0] == -1
        self.input = IOInfo(self.in_detail["name"], (None if dynamic else n, c, h, w))
        self.output_names = [d["name"] for d in self.out_details]
        self.batch = n
        self.interp.allocate_tensors()
        self.precision_ran = "fp32"
        notes = [f"input layout {'NHWC' if self.nhwc else 'NCHW'} (read from the model)"]
        if self.nhwc:
            notes.append("NHWC model: the session transposes the host's NCHW batch")
        if not dynamic:
            notes.append(f"fixed batch {n}: run that many at a time")
        q_in, q_out = self._quant(self.in_detail), [self._quant(d) for d in self.out_details]
        if q_in or any(q_out):
            self.precision_ran = "int8"
            notes.append("quantized model: input quantized, outputs dequantized (its scales)")
        self.notes = tuple(notes)

    @staticmethod
    def _quant(detail: dict) -> tuple[float, int] | None:
        scale, zero = detail.get("quantization", (0.0, 0))
        if np.dtype(detail["dtype"]).kind in "iu" and scale:
            return float(scale), int(zero)
        return None

    def _resize(self, n: int) -> None:
        shape = list(self.in_detail["shape"])
        shape[0] = n
        self.interp.resize_tensor_input(self.in_detail["index"], shape, strict=True)
        self.interp.allocate_tensors()
        self.batch = n

    def _to_input(self, batch: np.ndarray) -> np.ndarray:
        x = batch.transpose(0, 2, 3, 1) if self.nhwc else batch
        dtype = np.dtype(self.in_detail["dtype"])
        q = self._quant(self.in_detail)
        if q:
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / q[0] + q[1]), info.min, info.max)
        return np.ascontiguousarray(x, dtype=dtype)

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if len(batch) != self.batch:
            self._resize(len(batch))
        self.interp.set_tensor(self.in_detail["index"], self._to_input(batch))
        self.interp.invoke()
        outs = []
        for d in self.out_details:
            a = self.interp.get_tensor(d["index"])
            q = self._quant(d)
            outs.append((a.astype(np.float32) - q[1]) * q[0] if q else a.copy())
        return as_float32_outputs(self.output_names, outs)


@BACKENDS.register("litert")
class LiteRtBackend(BaseBackend):
    name = "litert"
    capabilities = Capabilities(
        # torch sources convert through litert-torch (the `litert-convert` extra), checked
        # when the variant loads: planning only knows the runtime's own requirement
        sources=("tflite", "torch", "torchvision"),
        placements=("host", "graph"),
        precisions=("fp32",),
        devices=("cpu",),
        requires=("ai_edge_litert",),
        extra=_EXTRA,
        reference_rank=5,
    )

    def refuses(self, placement: str, precision: str, device: str, source: str) -> str | None:
        if source == "tflite" and placement == "graph":
            return "norm 'graph' needs a torch model, not a .tflite file"
        return None

    def load(self, variant: ModelVariant, cache_dir: str, calibration=None) -> LiteRtSession:
        if variant.model.source == "tflite":
            if variant.placement == "graph":
                raise ValueError("norm 'graph' needs a torch model, not a .tflite file")
            return LiteRtSession(variant.model.weights, variant)
        from evalharness.backends.litert_convert import tflite_from_torch

        return LiteRtSession(tflite_from_torch(variant, cache_dir), variant)

    def versions(self) -> dict[str, str]:
        return {
            "ai_edge_litert": dist_version("ai-edge-litert"),
            "litert_torch": dist_version("litert-torch"),
        }
