"""The fix, measured: re-quantize with the layers that add the most error kept in float.

A layerwise result ranks layers by the error their own step adds (divergence.py). Keeping
the top K of them in float is the standard mixed-precision remedy; whether it removes the
flips is an empirical question, so these functions only *make* the model: the caller caches
it by content (as backends/quantize.py does) and evaluates it through the normal engine.

The quantizer settings are those of backends/quantize.py (ORT: quant_pre_process, QDQ,
per-channel int8 weights, uint8 activations; NNCF: the preset, subset = all calibration
images), so the only change from the tool's int8 model is the excluded nodes.

Names: ORT's `nodes_to_exclude` takes node names of the model it quantizes (after
quant_pre_process, which keeps the exported node names); NNCF's `IgnoredScope` takes
OpenVINO op names, which are the ONNX node names, sometimes with a suffix (the Convolution
of an ONNX Conv with bias is '<node>/WithoutBiases'): patterns cover both.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from evalharness.layerwise.graph import LayerGraph

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


def nodes_for_layers(
    graph: LayerGraph, layers: Iterable[str], compared: Iterable[str], readers: bool = True
) -> list[str]:
    """The nodes that "keep this layer in float" excludes from quantization.

    A layer's error after quantization has two parts: its own step (the nodes from the
    compared tensors it reads to it: their int8 weights and int8 inputs), and the
    quantization of the tensor itself. Both ORT (QuantizeLinear) and NNCF (FakeQuantize)
    quantize a tensor for its *readers*, on their inputs, so the second part goes away only
    when its readers are excluded too (`readers`, the default; their weights then stay
    float as well). A graph input has no step: it is only its readers.
    """
    compared = list(compared)
    nodes_all = sorted(set(graph.producer.values()), key=lambda n: n.index)
    names: list[str] = []
    for layer in layers:
        chosen = list(graph.step(layer, compared).nodes)
        if readers or not chosen:
            chosen += [n for n in nodes_all if layer in n.inputs]
        for node in sorted(chosen, key=lambda n: n.index):
            if node.name not in names:
                names.append(node.name)
    return names


class _Reader:
    """onnxruntime's calibration reader over a list of (C, H, W) host tensors."""

    def __init__(self, name: str, calib: Sequence[np.ndarray]) -> None:
        self.items = iter([{name: np.asarray(x, np.float32)[None]} for x in calib])

    def get_next(self):
        return next(self.items, None)

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def requantize_ort(
    src: str | Path,
    calib: Sequence[np.ndarray],
    exclude: Sequence[str],
    dst: str | Path,
    method: str = "minmax",
) -> Path:
    """Write to `dst` the int8_ort QDQ model of the fp32 ONNX `src`, `exclude` nodes float.

    The signature fits backends/derived.py: `derived_file(..., build=lambda tmp:
    requantize_ort(src, calib, nodes, tmp))` caches it by content.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"method must be one of {CALIBRATION_METHODS}, got '{method}'")
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}  # fmt: skip
    dst = Path(dst)
    name = onnx.load(str(src), load_external_data=False).graph.input[0].name
    prepared = dst.with_name(dst.name + ".pre.onnx")
    with _quiet():
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(dst),
            _Reader(name, calib),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            nodes_to_exclude=list(exclude),
        )
    prepared.unlink(missing_ok=True)
    return dst


@contextlib.contextmanager
def _quiet(name: str = ""):
    """onnxruntime.quantization logs advice to the root logger at WARNING, NNCF every ignored
    node at INFO: keep a re-quantization quiet, as backends/quantize.py does."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def ignored_patterns(nodes: Iterable[str]) -> list[str]:
    """NNCF IgnoredScope patterns for ONNX node names: the op itself and its '/...' parts."""
    return [f"^{re.escape(n)}(/.*)?$" for n in nodes]


def requantize_nncf(
    src: str | Path,
    calib: Sequence[np.ndarray],
    exclude: Sequence[str],
    dst_dir: str | Path,
    preset: str = "performance",
) -> Path:
    """Write `dst_dir/model.xml`: NNCF int8 of `src` (ONNX or IR), `exclude` nodes float."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(src))
    scope = nncf.IgnoredScope(patterns=ignored_patterns(exclude), validate=False)
    with _quiet("nncf"):
        quantized = nncf.quantize(
            model,
            nncf.Dataset([np.asarray(x, np.float32)[None] for x in calib]),
            preset=nncf.QuantizationPreset(preset),
            subset_size=len(calib),
            ignored_scope=scope,
        )
    out = Path(dst_dir) / "model.xml"
    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out))
    return out
