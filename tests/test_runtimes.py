"""tract, ncnn and LiteRT against torch on the demo model; user .param/.bin and .tflite files
in one command; the ResNet-20 shortcut that pnnx converts; fixed-batch (N, C, 1, 1) models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from omegaconf import open_dict
from torch import nn

from evalharness.backends.base import BACKENDS, ModelVariant
from evalharness.backends.export import export_onnx
from evalharness.data.dataset import load_dataset
from evalharness.models.cifar_resnet import resnet20
from evalharness.models.source import ModelSpec, build_torch_model
from evalharness.preprocess.colour import ColourSpec, HostNormSpec
from evalharness.preprocess.decode import DecodeSpec
from evalharness.preprocess.pipeline import build_pipeline, run_pipeline
from evalharness.preprocess.resize import ResizeSpec

from .conftest import SHARED_DATA, compose_config, run_in_process
from .test_backends import allclose

LIMIT = ["dataset.limit=24", "chunk_size=24", "batch_size=8", "progress=false"]


def _needs(module: str):
    import importlib.util

    return pytest.mark.skipif(
        importlib.util.find_spec(module) is None, reason=f"{module} is not installed"
    )


needs_tract, needs_ncnn, needs_litert = _needs("tract"), _needs("ncnn"), _needs("ai_edge_litert")
needs_pnnx = _needs("pnnx")


@pytest.fixture(scope="module")
def demo(export_cache):
    """(model spec, mean, std, host inputs per placement, session loader) on 16 demo images."""
    cfg, _ = compose_config(["dataset.limit=16"])
    model = ModelSpec.from_config(cfg.model)
    ds = load_dataset(cfg.dataset)
    mean, std = tuple(cfg.model.card.mean), tuple(cfg.model.card.std)

    def inputs(placement):
        stages = build_pipeline(
            DecodeSpec("pil"),
            ResizeSpec("pil", "bilinear", 64),
            ColourSpec("rgb"),
            HostNormSpec(placement, mean, std),
        )
        return np.stack([run_pipeline(stages, s.path).pixels for s in ds.samples])

    def load(backend, placement="host", precision="fp32", options=()):
        v = ModelVariant(model, backend, placement, mean, std, precision, 1, "cpu", options)
        return BACKENDS.get(backend)().load(v, str(export_cache))

    def logits(backend, placement="host", precision="fp32", options=()):
        return load(backend, placement, precision, options).infer(inputs(placement))["logits"]

    return model, logits, load


def _demo_onnx(export_cache) -> Path:
    cfg, _ = compose_config([])
    return export_onnx(ModelSpec.from_config(cfg.model), export_cache)


@pytest.fixture(scope="module")
def reference_preds(tmp_path_factory):
    _, out = run_in_process(LIMIT, tmp_path_factory.mktemp("ref"))
    return pd.read_parquet(out / "predictions.parquet").pred.tolist()


def _run(tmp_path, overrides, model_patch, name="run"):
    def patch(cfg):
        cfg["model"].update(model_patch)

    return run_in_process([*LIMIT, *overrides], tmp_path / name, patch)


def _preds(summary: pd.DataFrame, out: Path, backend: str) -> list[int]:
    """Predictions of the run's config on `backend` (the run may add the card's reference
    config on another backend)."""
    cid = summary.loc[summary.backend == backend, "config_id"].iloc[0]
    preds = pd.read_parquet(out / "predictions.parquet")
    return preds[preds.config_id == cid].sort_values("sample_index").pred.tolist()


# --- each backend against torch ------------------------------------------------------------


# tract agrees with torch to ~2e-6 and ncnn (fp32 weights, fp32 options) to ~5e-6 on these
# logits: the shared Polygraphy tolerance of test_backends (1e-4 abs and rel) holds.
@pytest.mark.parametrize(
    "backend", [pytest.param("tract", marks=needs_tract), pytest.param("ncnn", marks=needs_ncnn)]
)
@pytest.mark.parametrize("placement", ["host", "graph"])
def test_runtime_logits_match_torch(demo, backend, placement):
    _, logits, _ = demo
    ref = logits("torch")
    out = logits(backend, placement)
    assert out.shape == ref.shape == (16, 10)
    assert allclose(out, ref), np.abs(out - ref).max()
    assert (out.argmax(1) == ref.argmax(1)).all()


@needs_ncnn
@pytest.mark.parametrize(
    "precision,ran,tol",
    [
        # x86: weights stored fp16 (pnnx's default), arithmetic fp32; ARM with asimdhp: fp16
        ("fp16", {"fp16_storage", "fp16"}, 0.05),
        ("bf16", {"bf16"}, 0.1),
        ("fp32_unpacked", {"fp32_unpacked"}, 1e-4),
    ],
)
def test_ncnn_precision_is_what_ran(demo, precision, ran, tol):
    _, logits, load = demo
    opts = (("ncnn_use_packing_layout", False),) if precision == "fp32_unpacked" else ()
    session = load("ncnn", "host", precision, opts)
    assert session.precision_ran in ran, session.notes
    fp32, low = logits("ncnn"), logits("ncnn", "host", precision, opts)
    assert not np.array_equal(low, fp32)
    assert allclose(low, fp32, atol=tol, rtol=tol), np.abs(low - fp32).max()
    assert (low.argmax(1) == fp32.argmax(1)).mean() >= 0.9


@needs_tract
def test_tract_keeps_one_runnable_per_batch_shape(demo):
    _, _, load = demo
    session = load("tract")
    x = np.zeros((5, 3, 64, 64), np.float32)
    session.infer(x)
    session.infer(x[:2])
    session.infer(x)
    assert sorted(session.runnables) == [(2, 3, 64, 64), (5, 3, 64, 64)]


# --- ResNet-20's shortcut ----------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 16, 9])
def test_maxpool_subsampling_is_the_strided_slice(size):
    x = torch.randn(4, 16, size, size, generator=torch.Generator().manual_seed(size))
    assert torch.equal(F.max_pool2d(x, 1, 2), x[:, :, ::2, ::2])


@pytest.fixture(scope="module")
def resnet20_spec(tmp_path_factory):
    """ResNet-20 with random (seeded) weights: the architecture is what pnnx must convert."""
    torch.manual_seed(0)
    model = resnet20()
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("r20") / "resnet20.pt"
    torch.save(model.state_dict(), path)
    cfg, _ = compose_config(["model=resnet20_cifar", "dataset=demo"])
    with open_dict(cfg):
        cfg.model.weights = str(path)
    return ModelSpec.from_config(cfg.model)


@needs_ncnn
@needs_pnnx
def test_resnet20_on_ncnn_matches_torch(resnet20_spec, export_cache):
    x = np.random.default_rng(0).standard_normal((6, 3, 32, 32)).astype(np.float32)
    ref = build_torch_model(resnet20_spec)(torch.from_numpy(x)).detach().numpy()
    v = ModelVariant(resnet20_spec, "ncnn", "host", (0, 0, 0), (1, 1, 1))
    out = BACKENDS.get("ncnn")().load(v, str(export_cache)).infer(x)["logits"]
    assert allclose(out, ref), np.abs(out - ref).max()
    assert (out.argmax(1) == ref.argmax(1)).all()


@needs_pnnx
def test_pnnx_refuses_a_strided_slice_in_one_line(tmp_path, export_cache):
    from evalharness.backends.pnnx_convert import ncnn_from_onnx

    class Strided(nn.Module):
        def forward(self, x):
            return x[:, :, ::2, ::2] * 2

    path = tmp_path / "strided.onnx"
    torch.onnx.export(Strided(), (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False)
    with pytest.raises(ValueError, match=r"pnnx cannot lower Tensor.slice .*step 2") as e:
        ncnn_from_onnx(path, export_cache, (1, 3, 8, 8), fp16_weights=False)
    assert "\n" not in str(e.value)


# --- a user's own files, one command each ------------------------------------------------


@needs_ncnn
@needs_pnnx
def test_user_ncnn_param_bin(tmp_path, export_cache, reference_preds):
    """The demo model converted once, then handed over as a user's .param/.bin (blob names
    read from the file)."""
    from evalharness.backends.pnnx_convert import BIN, PARAM, ncnn_from_onnx

    folder = ncnn_from_onnx(_demo_onnx(export_cache), export_cache, (1, 3, 64, 64), False)
    shutil.copy(folder / PARAM, tmp_path / "demo.param")
    shutil.copy(folder / BIN, tmp_path / "demo.bin")
    summary, out = _run(
        tmp_path, ["backend=ncnn"], {"source": "ncnn", "weights": str(tmp_path / "demo.param")}
    )
    assert _preds(summary, out, "ncnn") == reference_preds


@needs_ncnn
@needs_pnnx
def test_user_ncnn_blob_names_from_the_config(tmp_path, export_cache, reference_preds):
    """input_name and outputs: name the blobs of a .param that has others (data -> prob)."""
    from evalharness.backends.pnnx_convert import BIN, PARAM, ncnn_from_onnx

    folder = ncnn_from_onnx(_demo_onnx(export_cache), export_cache, (1, 3, 64, 64), False)
    text = (folder / PARAM).read_text()
    (tmp_path / "m.param").write_text(text.replace(" in0", " data").replace(" out0", " prob"))
    shutil.copy(folder / BIN, tmp_path / "m.bin")
    patch = {
        "source": "ncnn",
        "weights": str(tmp_path / "m.param"),
        "input_name": "data",
        "outputs": {"logits": "prob"},
    }
    summary, out = _run(tmp_path, ["backend=ncnn"], patch)
    assert _preds(summary, out, "ncnn") == reference_preds


@needs_litert
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_user_tflite(tmp_path, reference_preds, layout):
    """A .tflite written by tests/tflite_builder.py from the demo CNN's weights (no
    TensorFlow, no litert-torch): NHWC as TF-born models are, NCHW as litert-torch writes."""
    from .tflite_builder import tflite_from_cnn

    cfg, _ = compose_config([])
    module = build_torch_model(ModelSpec.from_config(cfg.model))
    path = tflite_from_cnn(module, (64, 64), tmp_path / f"demo_{layout}.tflite", layout)
    summary, out = _run(tmp_path, ["backend=litert"], {"source": "tflite", "weights": str(path)})
    assert _preds(summary, out, "litert") == reference_preds
    notes = (out / "variants.json").read_text()
    assert f"input layout {layout}" in notes
    assert ("transposes the host's NCHW batch" in notes) == (layout == "NHWC")


@needs_litert
def test_litert_logits_match_torch(demo, tmp_path):
    from evalharness.backends.runtimes.litert_backend import LiteRtSession

    from .tflite_builder import tflite_from_cnn

    model, logits, _ = demo
    path = tflite_from_cnn(build_torch_model(model), (64, 64), tmp_path / "m.tflite")
    session = LiteRtSession(path, ModelVariant(model, "litert", "host", (0,) * 3, (1,) * 3))
    ref = logits("torch")
    stages = build_pipeline(
        DecodeSpec("pil"),
        ResizeSpec("pil", "bilinear", 64),
        ColourSpec("rgb"),
        HostNormSpec("host", model_mean := (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    )
    assert model_mean
    cfg, _ = compose_config(["dataset.limit=16"])
    x = np.stack([run_pipeline(stages, s.path).pixels for s in load_dataset(cfg.dataset).samples])
    out = session.infer(x)["logits"]
    assert allclose(out, ref), np.abs(out - ref).max()


# --- fixed batch 1 and (N, C, 1, 1) outputs ------------------------------------------------


class _Caffeish(nn.Module):
    """The demo CNN with a classifier output of (1, 10, 1, 1), as Caffe and Open Model Zoo
    classifiers have."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x).reshape(1, 10, 1, 1)


@pytest.fixture(scope="module")
def fixed_batch_models(tmp_path_factory):
    """The demo CNN exported with a fixed batch of 1 and a (1, 10, 1, 1) output: ONNX + IR."""
    import openvino as ov

    folder = tmp_path_factory.mktemp("fixed")
    cfg, _ = compose_config([])
    module = _Caffeish(build_torch_model(ModelSpec.from_config(cfg.model))).eval()
    onnx_path = folder / "demo_b1.onnx"
    torch.onnx.export(
        module, (torch.zeros(1, 3, 64, 64),), str(onnx_path), dynamo=False,
        input_names=["data"], output_names=["prob"],
    )  # fmt: skip
    xml = folder / "demo_b1.xml"
    ov.save_model(ov.Core().read_model(str(onnx_path)), str(xml))
    return onnx_path, xml


def test_ir_with_fixed_batch_and_nc11_output_runs(tmp_path, fixed_batch_models, reference_preds):
    """An IR with a (1, 10, 1, 1) output and a fixed batch of 1 runs (the issue's test)."""
    _, xml = fixed_batch_models
    summary, out = _run(tmp_path, ["backend=openvino"], {"source": "openvino", "weights": str(xml)})
    assert _preds(summary, out, "openvino") == reference_preds


@pytest.mark.parametrize(
    "backend",
    [
        "onnxruntime",
        "openvino",
        pytest.param("tract", marks=needs_tract),
        pytest.param("ncnn", marks=[needs_ncnn, needs_pnnx]),
    ],
)
def test_onnx_with_fixed_batch_and_nc11_output_runs(
    tmp_path, fixed_batch_models, reference_preds, backend
):
    onnx_path, _ = fixed_batch_models
    summary, out = _run(
        tmp_path, [f"backend={backend}"], {"source": "onnx", "weights": str(onnx_path)}
    )
    assert _preds(summary, out, backend) == reference_preds


def test_openvino_reports_the_precision_it_ran(demo):
    _, _, load = demo
    assert load("openvino").precision_ran == "fp32"


# --- real data ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")
@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("tract", marks=needs_tract),
        pytest.param("ncnn", marks=[needs_ncnn, needs_pnnx]),
    ],
)
def test_real_resnet20_agrees_with_torch(tmp_path, backend):
    """The real ResNet-20 on 1,000 CIFAR-10 JPEGs: the runtime's top-1 is torch's on every
    image (the benchmark's full-set figures: benchmarks/backends_table.py)."""
    overrides = [
        "model=resnet20_cifar", "dataset=cifar10_test", "dataset.limit=1000",
        "chunk_size=1000", f"backend={backend}",
    ]  # fmt: skip
    summary, _ = run_in_process(overrides, tmp_path / "run")
    row = summary[summary.backend == backend].iloc[0]
    assert row.agree_ref == 100.0
    assert row.top1 == summary[summary.backend == "torch"].iloc[0].top1
