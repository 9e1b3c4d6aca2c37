"""The three backends and three normalization placements agree on real demo inputs."""

import threading

import numpy as np
import pytest

from evalharness.backends.base import BACKENDS, ModelVariant
from evalharness.data.dataset import load_dataset
from evalharness.models.source import ModelSpec
from evalharness.preprocess.colour import ColourSpec, HostNormSpec
from evalharness.preprocess.decode import DecodeSpec
from evalharness.preprocess.pipeline import build_pipeline, run_pipeline
from evalharness.preprocess.resize import ResizeSpec

from .conftest import compose_config

# Polygraphy semantics: an element fails only if |a-b| > ATOL and |a-b| > RTOL * |b|.
ATOL, RTOL = 1e-4, 1e-4


def allclose(a: np.ndarray, b: np.ndarray, atol: float = ATOL, rtol: float = RTOL) -> bool:
    diff = np.abs(a - b)
    return not ((diff > atol) & (diff > rtol * np.abs(b))).any()


@pytest.fixture(scope="module")
def setup(export_cache):
    cfg, _ = compose_config(["dataset.limit=16"])
    model = ModelSpec.from_config(cfg.model)
    ds = load_dataset(cfg.dataset)
    card = cfg.model.card
    mean, std = tuple(card.mean), tuple(card.std)

    def inputs(placement):
        stages = build_pipeline(
            DecodeSpec("pil"),
            ResizeSpec("pil", "bilinear", 64),
            ColourSpec("rgb"),
            HostNormSpec(placement, mean, std),
        )
        return np.stack([run_pipeline(stages, s.path).pixels for s in ds.samples])

    def session(backend, placement, precision="fp32"):
        v = ModelVariant(model, backend, placement, mean, std, precision)
        return BACKENDS.get(backend)().load(v, str(export_cache))

    def logits(backend, placement, precision="fp32"):
        return session(backend, placement, precision).infer(inputs(placement))["logits"]

    logits.session, logits.inputs = session, inputs
    return logits


def test_openvino_streams_infer_side_by_side_with_the_same_bits(setup, monkeypatch):
    """One CPU stream per core's worth of `threads`, so the engine's workers infer at the same
    time (with one stream the plugin queued them); each stream gives one stream's bits."""
    from evalharness.backends.runtimes import openvino_backend

    x = setup.inputs("host")
    session = setup.session("openvino", "host")
    assert session.compiled.get_property("NUM_STREAMS") == openvino_backend.cpu_streams(1)
    outs: dict[int, np.ndarray] = {}

    def run(k):
        for _ in range(5):
            outs[k] = session.infer(x[k * 8 : k * 8 + 8])["logits"]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    monkeypatch.setattr(openvino_backend, "cpu_streams", lambda threads: 1)
    one = setup.session("openvino", "host")
    assert one.compiled.get_property("NUM_STREAMS") == 1
    for k in range(2):
        assert np.array_equal(outs[k], one.infer(x[k * 8 : k * 8 + 8])["logits"])


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("placement", ["host", "graph"])
def test_backend_logits_match_torch(setup, backend, placement):
    ref = setup("torch", "host")
    out = setup(backend, placement)
    assert out.shape == ref.shape == (16, 10)
    assert allclose(out, ref), np.abs(out - ref).max()
    assert (out.argmax(1) == ref.argmax(1)).all()


def test_graph_placement_matches_host_on_torch(setup):
    assert allclose(setup("torch", "graph"), setup("torch", "host"))


def test_openvino_ppp_matches_host(setup):
    ref = setup("torch", "host")
    assert allclose(setup("openvino", "ov_ppp"), ref)


@pytest.mark.parametrize(
    "backend,precision,tol",
    [("torch", "bf16", (0.5, 0.1)), ("onnxruntime", "fp16", (0.05, 0.05))],
)
def test_reduced_precision_is_close_but_not_identical(setup, backend, precision, tol):
    ref = setup("torch", "host")
    low = setup(backend, "host", precision)
    assert not np.array_equal(low, ref)
    assert allclose(low, ref, atol=tol[0], rtol=tol[1])
    assert (low.argmax(1) == ref.argmax(1)).mean() >= 0.9


def test_verify_reports_every_variant(capsys):
    from evalharness.commands.verify import main

    code = main(["--n", "8", "dataset.limit=8"])
    out = capsys.readouterr().out
    assert code == 0  # every fp32 export passes rtol 1e-2 / atol 1e-3
    for variant in ["onnxruntime/fp32", "onnxruntime/fp16", "openvino/fp32", "torch/bf16"]:
        assert variant in out
