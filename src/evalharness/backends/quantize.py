"""Int8 post-training quantization, as derived models in the cache.

- `int8_ort`: onnxruntime.quantization.quantize_static, QDQ format, per-channel int8 weights,
  uint8 activations, calibration method minmax / entropy / percentile. The QDQ ONNX runs on
  onnxruntime and on OpenVINO (which reads QDQ as int8).
- `int8_nncf`: NNCF post-training quantization of the OpenVINO model (preset performance /
  mixed), saved as an IR.
Both are keyed by the source model's content hash, the calibration set (image ids and
contents), the variant's preprocessing chain and every setting and library version, so a
second identical run reuses the file (quantize seconds 0 in stats.json) and a change of any
of them quantizes anew. Calibration tensors come from engine/calibration.py.

Setting `exclude` (both): ONNX node names kept in float, separated by spaces
(`precision.exclude='/layer3/layer3.2/conv2/Conv /fc/Gemm'`): onnxruntime's
`nodes_to_exclude`, NNCF's `IgnoredScope` (OpenVINO op names are the ONNX node names, some
with a '/...' suffix: the Convolution of a Conv with bias is '<node>/WithoutBiases', so each
name is a pattern for the op and its parts). `evalharness layers --try-exclude K` writes it:
the re-quantized model is a derived model like any other, and its config a normal config.
An empty `exclude` is not part of the cache key, so models quantized before it existed
are still found.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from pathlib import Path

import numpy as np

from evalharness.backends.base import ModelVariant
from evalharness.backends.derived import derived_dir, derived_file
from evalharness.hashing import file_sha256
from evalharness.optional import error_line, require

ORT_METHODS = ("minmax", "entropy", "percentile")
NNCF_PRESETS = ("performance", "mixed")
SETTING_CHOICES = {  # checked at planning, before a run dir is claimed
    "int8_ort": {"calibration_method": ORT_METHODS},
    "int8_nncf": {"preset": NNCF_PRESETS},
}
EXCLUDE = "exclude"  # the setting naming the nodes kept in float (both quantizers)


def check_precision_settings(precision: str, settings) -> None:
    """A quantizer setting outside what the quantizer offers: one line, before any work."""
    for key, allowed in SETTING_CHOICES.get(precision, {}).items():
        value = settings.get(key)
        if value is not None and str(value) not in allowed:
            raise ValueError(
                f"precision '{precision}': {key} must be one of {', '.join(allowed)}, got '{value}'"
            )
    value = settings.get(EXCLUDE)
    if value is not None and not isinstance(value, str):
        # a Hydra list would reach the model's identity as a list: one spelling only
        raise ValueError(
            f"precision '{precision}': exclude is one string of node names separated by "
            f"spaces (precision.exclude='/a/Conv /b/Conv'), got {value!r}"
        )


def excluded_nodes(variant: ModelVariant) -> list[str]:
    """The node names the variant's `exclude` setting keeps in float (in the given order)."""
    return str(variant.option(EXCLUDE) or "").split()


def ignored_patterns(nodes: list[str]) -> list[str]:
    """NNCF IgnoredScope patterns for ONNX node names: the op itself and its '/...' parts."""
    return [f"^{re.escape(n)}(/.*)?$" for n in nodes]


def _with_exclude(payload: dict, nodes: list[str]) -> dict:
    """The cache key gains the excluded nodes only when there are some: a model quantized
    before the setting existed keeps its key."""
    return {**payload, EXCLUDE: nodes} if nodes else payload


@contextlib.contextmanager
def quiet_root_logger(name: str = ""):
    """onnxruntime.quantization logs advice to the root logger at WARNING, NNCF every node an
    ignored scope leaves float at INFO ("nncf"): keep runs quiet."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class Timer:
    """Seconds spent quantizing (0 when the cached model was reused)."""

    def __init__(self) -> None:
        self.seconds = 0.0


def _payload(variant: ModelVariant, source: Path, **extra) -> dict:
    own = Path(source) == Path(variant.model.weights)  # the user's file (an IR: xml + bin)
    return dict(
        source=variant.model.weights_sha256 if own else file_sha256(source),
        calibration=variant.option("calibration_key"),
        pipeline=variant.option("pipeline"),
        placement=variant.placement,
        **extra,
    )


def self_contained(src: Path, folder: Path) -> Path:
    """src itself, or (when its weights are in external data files) a single-file copy in
    `folder`: onnxruntime's quantization pre-processing rewrites the model in a temp folder
    of its own, where relative external-data paths no longer resolve ("... not regular
    file"). A copy cannot exceed protobuf's 2 GB: such a model is refused in one line."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    head = onnx.load(str(src), load_external_data=False)
    if not any(uses_external_data(t) for t in head.graph.initializer):
        return src
    model = onnx.load(str(src))  # the external data, read from src's own folder
    if model.ByteSize() >= 2**31 - 1:
        raise ValueError(
            f"precision 'int8_ort': {src.name} holds more than 2 GB of weights in external "
            "data, which onnxruntime's quantization pre-processing cannot read"
        )
    out = folder / f"{src.stem}.inline.onnx"
    onnx.save(model, str(out))
    return out


def quantize_ort(
    src: Path, variant: ModelVariant, calib: list[np.ndarray], cache_dir, timer: Timer
) -> Path:
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    method = str(variant.option("calibration_method", "minmax"))
    if method not in ORT_METHODS:
        raise ValueError(f"calibration_method must be one of {ORT_METHODS}, got '{method}'")
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}  # fmt: skip
    exclude = excluded_nodes(variant)

    class Reader(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            self.items = iter([{name: x[None]} for x in calib])

        def get_next(self):
            return next(self.items, None)

    def build(tmp: Path) -> None:
        import onnx
        from onnxruntime.quantization.shape_inference import quant_pre_process

        t0 = time.perf_counter()
        name = onnx.load(str(src), load_external_data=False).graph.input[0].name
        # everything ORT writes goes beside tmp: the build's temp folder, removed after
        source = self_contained(src, tmp.parent)
        prepared = tmp.with_name(tmp.name + ".pre.onnx")
        try:
            with quiet_root_logger():
                # ORT's recommended pre-processing (shape inference, graph optimisation) first
                quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
                quantize_static(
                    str(prepared),
                    str(tmp),
                    Reader(name),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=methods[method],
                    nodes_to_exclude=exclude,
                )
        except (OSError, MemoryError):
            raise  # a full disk is said by the caller, with the file
        except Exception as e:  # onnx's ValidationError, protobuf's DecodeError, ORT's own
            raise ValueError(
                f"precision 'int8_ort': onnxruntime cannot quantize {src.name}: {error_line(e)}"
            ) from None
        timer.seconds += time.perf_counter() - t0

    payload = _payload(variant, src, kind="int8_ort", method=method,
                       ort=onnxruntime.__version__, n=len(calib))  # fmt: skip
    payload = _with_exclude(payload, exclude)
    return derived_file(cache_dir, "int8", payload, ".onnx", build, stem=f"{src.stem}-int8ort")


def quantize_nncf(
    src: Path, variant: ModelVariant, calib: list[np.ndarray], cache_dir, timer: Timer
) -> Path:
    """An NNCF-quantized IR (xml + bin in a cache folder) of an ONNX or IR source."""
    nncf = require("nncf", "precision 'int8_nncf'", "int8")
    import openvino as ov

    preset = str(variant.option("preset", "performance"))
    if preset not in NNCF_PRESETS:
        raise ValueError(f"preset must be one of {NNCF_PRESETS}, got '{preset}'")
    exclude = excluded_nodes(variant)

    def build(tmp: Path) -> None:
        t0 = time.perf_counter()
        model = ov.Core().read_model(str(src))
        dataset = nncf.Dataset([x[None] for x in calib])
        # validate=False: a pattern that matches no op (a node OpenVINO fused away) is no error
        scope = nncf.IgnoredScope(patterns=ignored_patterns(exclude), validate=False)
        with quiet_root_logger("nncf"):
            quantized = nncf.quantize(
                model,
                dataset,
                preset=nncf.QuantizationPreset(preset),
                subset_size=len(calib),
                ignored_scope=scope if exclude else None,
            )
        ov.save_model(quantized, str(tmp / "model.xml"))
        timer.seconds += time.perf_counter() - t0

    payload = _payload(variant, src, kind="int8_nncf", preset=preset, nncf=nncf.__version__,
                       openvino=ov.get_version(), n=len(calib))  # fmt: skip
    payload = _with_exclude(payload, exclude)
    return derived_dir(cache_dir, "int8", payload, build, stem=f"{src.stem}-nncf") / "model.xml"
