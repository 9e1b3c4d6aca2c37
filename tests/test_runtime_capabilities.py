"""What each runtime refuses, in one line, before any work: devices, norms and precisions it
does not declare, a missing runtime (with the extra that installs it), a GPU that is not
there. GPU runs skip with a reason on a machine without one. Also: runtime versions in the
provenance, and tract's fallback for models whose value_info it cannot unify."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from evalharness.backends.base import BACKENDS, ModelVariant
from evalharness.config.plan import PlanError
from evalharness.models.source import ModelSpec
from evalharness.optional import MissingRuntimeError

from .conftest import compose_config, run_in_process

LIMIT = ["dataset.limit=8", "chunk_size=8", "progress=false"]


def _plan_error(tmp_path, overrides) -> str:
    with pytest.raises(PlanError) as e:
        run_in_process([*LIMIT, *overrides], tmp_path / "run")
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["backend=tract", "device=cuda"], "device 'cuda' not on tract (cpu)"),
        (["backend=ncnn", "device=tensorrt"], "device 'tensorrt' not on ncnn"),
        (["backend=litert", "device=cuda"], "device 'cuda' not on litert"),
        (["backend=ncnn", "norm=ov_ppp"], "norm 'ov_ppp' is not available on ncnn"),
        (["backend=tract", "precision=bf16"], "precision 'bf16' not on tract (fp32)"),
        (["backend=onnxruntime", "precision=fp32_unpacked"], "precision 'fp32_unpacked' not on"),
    ],
)
def test_undeclared_combinations_are_refused_up_front(tmp_path, overrides, message):
    assert message in _plan_error(tmp_path, overrides)


@pytest.mark.parametrize(
    "backend,module,extra",
    [("tract", "tract", "tract"), ("ncnn", "ncnn", "ncnn"), ("litert", "ai_edge_litert", "litert")],
)
def test_missing_runtime_names_the_extra(tmp_path, monkeypatch, backend, module, extra):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a)
    )
    message = _plan_error(tmp_path, [f"backend={backend}"])
    assert f"backend '{backend}' needs {module}: pip install 'evalharness[{extra}]'" in message


@pytest.fixture
def demo_variant():
    cfg, _ = compose_config([])
    model = ModelSpec.from_config(cfg.model)
    card = cfg.model.card

    def make(backend, device="cpu", precision="fp32", options=()):
        return ModelVariant(
            model, backend, "host", tuple(card.mean), tuple(card.std), precision, 1, device, options
        )

    return make


@pytest.mark.parametrize(
    "backend,module,extra", [("tract", "tract", "tract"), ("ncnn", "ncnn", "ncnn")]
)
def test_a_runtime_that_fails_to_import_is_one_line(
    monkeypatch, export_cache, demo_variant, backend, module, extra
):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(MissingRuntimeError, match=rf"pip install 'evalharness\[{extra}\]'$"):
        BACKENDS.get(backend)().load(demo_variant(backend), str(export_cache))


@pytest.mark.skipif(importlib.util.find_spec("litert_torch") is not None, reason="installed")
def test_torch_model_on_litert_without_the_converter(export_cache, demo_variant):
    with pytest.raises(MissingRuntimeError, match=r"evalharness\[litert-convert\]"):
        BACKENDS.get("litert")().load(demo_variant("litert"), str(export_cache))


def test_ncnn_conversion_without_pnnx_says_how_to_install_it(monkeypatch, export_cache):
    from evalharness.backends import pnnx_convert

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pnnx" else real(name, *a)
    )
    with pytest.raises(MissingRuntimeError, match="pip install --no-deps pnnx==20261020"):
        pnnx_convert.pnnx_binary()


# --- GPUs ---------------------------------------------------------------------------------

ORT_PROVIDERS = __import__("onnxruntime").get_available_providers()
no_cuda_torch = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA GPU visible to torch"
)


@pytest.mark.skipif("CUDAExecutionProvider" in ORT_PROVIDERS, reason="onnxruntime-gpu installed")
@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_gpu_device_on_cpu_onnxruntime_is_one_line(export_cache, demo_variant, device):
    with pytest.raises(ValueError, match=r"onnxruntime-gpu==1\.31\.1$") as e:
        BACKENDS.get("onnxruntime")().load(demo_variant("onnxruntime", device), str(export_cache))
    assert "\n" not in str(e.value)


def test_absent_openvino_device_is_one_line(export_cache, demo_variant):
    import openvino as ov

    if "GPU" in ov.Core().available_devices:
        pytest.skip("this machine has an OpenVINO GPU")
    variant = demo_variant("openvino", "gpu", options=(("ov_device", "GPU"),))
    with pytest.raises(ValueError, match="OpenVINO device 'GPU' is not available here"):
        BACKENDS.get("openvino")().load(variant, str(export_cache))


def _gpu_vs_cpu(backend, device, precision, demo_variant, export_cache, atol):
    x = np.random.default_rng(0).standard_normal((8, 3, 64, 64)).astype(np.float32)
    cpu = BACKENDS.get("torch")().load(demo_variant("torch"), str(export_cache)).infer(x)
    gpu = BACKENDS.get(backend)().load(demo_variant(backend, device, precision), str(export_cache))
    out = gpu.infer(x)
    assert np.abs(out["logits"] - cpu["logits"]).max() < atol
    assert (out["logits"].argmax(1) == cpu["logits"].argmax(1)).mean() >= 0.9


@no_cuda_torch
def test_torch_on_cuda(demo_variant, export_cache):
    _gpu_vs_cpu("torch", "cuda", "fp32", demo_variant, export_cache, 1e-3)


@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ORT_PROVIDERS, reason="onnxruntime has no CUDA provider"
)
@pytest.mark.parametrize("precision,atol", [("fp32", 1e-3), ("fp16", 0.1)])
def test_onnxruntime_on_cuda(demo_variant, export_cache, precision, atol):
    _gpu_vs_cpu("onnxruntime", "cuda", precision, demo_variant, export_cache, atol)


@pytest.mark.skipif(
    "TensorrtExecutionProvider" not in ORT_PROVIDERS, reason="onnxruntime has no TensorRT"
)
@pytest.mark.parametrize("precision,atol", [("fp32", 1e-2), ("fp16", 0.1)])
def test_onnxruntime_on_tensorrt(demo_variant, export_cache, precision, atol):
    _gpu_vs_cpu("onnxruntime", "tensorrt", precision, demo_variant, export_cache, atol)


# --- provenance ---------------------------------------------------------------------------


def test_runtime_versions_come_from_metadata(monkeypatch):
    """Each runtime reports its own versions (read from metadata, nothing imported)."""
    import importlib.metadata

    real = importlib.metadata.version

    def version(dist):
        if dist == "tract":
            raise importlib.metadata.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(importlib.metadata, "version", version)
    from evalharness.engine.versions import library_versions

    got = {}
    for backend in ("tract", "ncnn", "litert"):
        got.update(BACKENDS.get(backend)().versions())
    assert library_versions.__wrapped__()["tract"] == "absent"  # the v_tract column (uncached)
    assert got["tract"] == "absent"
    for column in ("ncnn", "pnnx", "ai_edge_litert"):
        dist = {"ai_edge_litert": "ai-edge-litert"}.get(column, column)
        assert got[column] == (real(dist) if importlib.util.find_spec(column) else "absent")


# --- tract on a model whose value_info it cannot unify ------------------------------------


def _ppocr() -> Path | None:
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models/PP-OCRv6_det_small.onnx"
    return path if path.is_file() else None


@pytest.mark.skipif(importlib.util.find_spec("tract") is None, reason="tract not installed")
@pytest.mark.skipif(_ppocr() is None, reason="rapidocr (PP-OCRv6 det) not installed")
def test_tract_runs_ppocr_without_its_value_info(export_cache):
    import onnxruntime as ort

    from evalharness.backends.runtimes.tract_backend import TractSession

    path = _ppocr()
    cfg, _ = compose_config([])
    variant = ModelVariant(ModelSpec.from_config(cfg.model), "tract", "host", (0,) * 3, (1,) * 3)
    session = TractSession(path, variant, str(export_cache))
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 96, 128)).astype(np.float32)
    out = session.infer(x)["fetch_name_0"]
    assert any("value_info removed" in n for n in session.notes)
    assert session.path != path and Path(export_cache) in session.path.parents
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert out.shape == ref[0].shape
    assert np.abs(out - ref[0]).max() < 1e-3
