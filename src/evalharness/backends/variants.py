"""The model file a variant runs, derived step by step from the model (all cached by content):
export, graph normalization, then fp16 or int8. Shared by the runtimes that read ONNX."""

from __future__ import annotations

from pathlib import Path

from evalharness.backends.base import ModelVariant
from evalharness.backends.export import export_onnx, to_float16, with_graph_normalization
from evalharness.backends.quantize import Timer, quantize_ort


def float_onnx_for_variant(variant: ModelVariant, cache_dir: str) -> Path:
    """The variant's float ONNX: the export, with the normalization in the graph when the
    variant puts it there (what fp16 and int8 are derived from)."""
    path = export_onnx(variant.model, cache_dir)
    if variant.placement == "graph":
        path = with_graph_normalization(path, cache_dir, variant.mean, variant.std)
    return path


def onnx_for_variant(variant: ModelVariant, cache_dir: str, calibration=None, timer=None):
    """The ONNX file a variant runs: export, then graph normalization, then fp16 or int8
    (QDQ, calibrated on `calibration`, the config's own host tensors), as asked (on
    TensorRT, fp16 is TensorRT's own conversion of the fp32 graph)."""
    path = float_onnx_for_variant(variant, cache_dir)
    if variant.precision == "fp16" and variant.device != "tensorrt":
        path = to_float16(path, cache_dir)
    if variant.precision == "int8_ort":
        if calibration is None:
            raise ValueError("precision int8_ort needs calibration images (run it in a sweep)")
        path = quantize_ort(path, variant, calibration, cache_dir, timer or Timer())
    return path
