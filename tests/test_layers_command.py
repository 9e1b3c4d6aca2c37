"""`evalharness layers` on run dirs of the tests' own: a divergence planted in one layer is
named by the command, the observer check and the files are there, the report shows it, and
`--try-exclude` evaluates a re-quantized config (precision.exclude) against A and B."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import numpy_helper

from evalharness.backends.base import BACKENDS
from evalharness.backends.derived import derived_file
from evalharness.backends.quantize import check_precision_settings
from evalharness.backends.runtimes.onnxruntime_backend import OnnxRuntimeBackend
from evalharness.hashing import file_sha256

from .conftest import plan_of, run_in_process

PLANTED_NODE = "/features/features.8/Conv"  # the demo CNN's third convolution
PLANTED = f"{PLANTED_NODE}_output_0"
DEMO = ["dataset.limit=240", "dataset.limit_spread=true", "chunk_size=80"]


def perturbed(src: Path, cache_dir: str) -> Path:
    """The export with one convolution's weights perturbed (30% of their spread): every
    tensor before it is the same, every tensor from it on differs. Cached like any model."""

    def build(tmp: Path) -> None:
        model = onnx.load(str(src))
        node = next(n for n in model.graph.node if n.name == PLANTED_NODE)
        init = next(i for i in model.graph.initializer if i.name == node.input[1])
        w = numpy_helper.to_array(init)
        noise = np.random.default_rng(7).normal(size=w.shape).astype(w.dtype) * w.std() * 0.3
        init.CopyFrom(numpy_helper.from_array(w + noise, init.name))
        onnx.save(model, str(tmp))

    payload = {"kind": "planted", "source": file_sha256(src), "node": PLANTED_NODE}
    return derived_file(cache_dir, "planted", payload, ".onnx", build)


class PlantedBackend(OnnxRuntimeBackend):
    """onnxruntime on the perturbed export: a plugin runtime whose model differs from the
    plain export in one layer only (the backend seam every runtime uses)."""

    name = "planted"

    def model_file(self, variant, cache_dir, calibration, timer):
        return perturbed(super().model_file(variant, cache_dir, calibration, timer), cache_dir)


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    """A run dir of onnxruntime vs the planted backend on the demo set (its own config dir
    names the backend option, recorded in the run so that on-demand planning finds it)."""
    conf = tmp_path_factory.mktemp("conf")
    (conf / "backend").mkdir()
    (conf / "backend" / "planted.yaml").write_text("name: planted\n")
    mp = pytest.MonkeyPatch()
    mp.setenv("EVALHARNESS_CONFIG_PATH", str(conf))
    BACKENDS.get("onnxruntime")  # discover the package's runtimes first
    mp.setitem(BACKENDS._items, "planted", PlantedBackend)

    def sweep(config: dict) -> None:
        config["sweep"] = {"factors": {"backend": ["onnxruntime", "planted"]}}

    out = tmp_path_factory.mktemp("planted") / "run"
    run_in_process(DEMO, out, sweep)
    yield out
    mp.undo()


def test_the_command_names_the_planted_layer(planted_run, capsys):
    from evalharness.commands.layers import main

    code = main([str(planted_run), "--a", "backend=onnxruntime", "--b", "backend=planted",
                 "--n", "12"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    folder = next((planted_run / "layers").glob("onnxruntime-*_vs_planted-*"))
    rec = json.loads((folder / "layers.json").read_text())
    assert rec["parting"]["layer"] == PLANTED and rec["first_difference"]["layer"] == PLANTED
    first = pd.read_csv(folder / "first_divergence.csv").set_index("layer")
    assert first.at[PLANTED, "flipped"] == rec["n_flipped"] > 0  # every flipped image
    table = pd.read_csv(folder / "layers.csv").set_index("layer")
    upstream = table.loc[: table.index[table.index.get_loc(PLANTED) - 1]]
    assert (upstream["max_abs_flipped_p90"] == 0).all()  # bit-identical before it
    assert f"part at layer {PLANTED} (Conv, depth" in rec["verdict"]
    assert f"VERDICT: {rec['verdict']}" in printed
    assert rec["observer_top1_changed"] == [0, 0] and len(rec["observer"]) == 2
    assert "observer: backend=onnxruntime" in printed
    assert rec["reproduced"] == [rec["n_flipped"] + rec["n_control"]] * 2  # the run's top-1
    images = pd.read_csv(folder / "images.csv")
    assert len(images) == rec["n_flipped"] + rec["n_control"] and images.sample_id.notna().all()
    for name in ("error_vs_depth.png", "first_divergence.png", "unmatched.csv"):
        assert (folder / name).exists()


def test_report_and_api_read_the_same_comparison(planted_run):
    from evalharness.api import Results
    from evalharness.report.build import layers_sections

    run = Results(planted_run).layers(b={"backend": "planted"}, a={"backend": "onnxruntime"},
                                      n=8)  # fmt: skip
    assert run.result.parting_layer == PLANTED and run.verdict == run.result.verdict
    sections = layers_sections(planted_run)
    assert sections and sections[0].verdict == run.verdict
    assert PLANTED in sections[0].tables[0].html and len(sections[0].figures) == 2


def test_refusals_are_one_line(planted_run, capsys):
    from evalharness.commands import run_command

    same = ["--a", "backend=onnxruntime", "--b", "backend=onnxruntime"]
    assert run_command("layers", [str(planted_run), *same]) == 2
    assert "same config" in capsys.readouterr().err
    args = ["--a", "backend=onnxruntime", "--b", "backend=planted", "--try-exclude", "2"]
    assert run_command("layers", [str(planted_run), *args]) == 2
    assert "neither A nor B has a precision with an exclude" in capsys.readouterr().err
    assert run_command("layers", [str(planted_run), "--b", "colour=nope"]) == 2
    assert "error:" in capsys.readouterr().err


def test_exclude_is_a_precision_setting():
    spec = next(
        s
        for s in plan_of(
            [
                "backend=onnxruntime",
                "precision=int8_ort",
                "calibration.n=20",
                "precision.exclude='/a/Conv /b/Gemm'",
                *DEMO,
            ]
        ).specs  # fmt: skip
        if s.variant.precision == "int8_ort"
    )
    assert spec.variant.option("exclude") == "/a/Conv /b/Gemm"
    with pytest.raises(ValueError, match="one string of node names"):
        check_precision_settings("int8_ort", {"exclude": ["/a/Conv"]})


@pytest.mark.slow
def test_try_exclude_evaluates_a_requantized_config(tmp_path):
    pytest.importorskip("nncf", reason="pip install 'evalharness[int8]'")
    from evalharness.runner.layers import run_layers

    overrides = ["backend=onnxruntime", "calibration.n=40", f"cache_dir={tmp_path / 'cache'}",
                 *DEMO]  # fmt: skip

    def sweep(config: dict) -> None:
        config["sweep"] = {"factors": {"precision": ["fp32", "int8_ort"]}}

    out = tmp_path / "run"
    run_in_process(overrides, out, sweep)
    run = run_layers(out, {"backend": "onnxruntime"}, {"precision": "int8_ort"}, n=16,
                     try_exclude=2)  # fmt: skip
    ex = run.exclude
    assert ex is not None and len(ex.layers) == 2 and ex.nodes
    assert set(ex.configs) == {"B'"} and ex.configs["B'"]["exclude"] == " ".join(ex.nodes)
    rows = ex.table.set_index("against")
    assert set(rows.index) == {"A", "B"}
    assert rows.at["A", "flips_before"] == run.n_flips  # B' vs A replaces B vs A
    assert rows.at["A", "change_lo"] <= rows.at["A", "change"] <= rows.at["A", "change_hi"]
    assert rows.at["A", "delta_lo"] <= rows.at["A", "delta"] <= rows.at["A", "delta_hi"]
    assert ex.summary.at["B'", "agree_ref_lo"] <= ex.summary.at["B'", "agree_ref"] <= 100
    # the re-quantized model is a derived model: its record names the excluded nodes
    records = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "int8").glob("*.json")]
    assert any(r.get("exclude") == ex.nodes for r in records)
    assert any("exclude" not in r for r in records)  # the sweep's own int8 model
    model = onnx.load(
        str(
            next(
                p
                for p in (tmp_path / "cache" / "int8").glob("*.onnx")
                if json.loads(Path(f"{p}.json").read_text()).get("exclude")
            )
        )
    )
    inits = {i.name: i for i in model.graph.initializer}
    for node in (n for n in model.graph.node if n.name in ex.nodes and n.op_type == "Conv"):
        assert inits[node.input[1]].data_type == onnx.TensorProto.FLOAT  # kept in float
    assert (out / "layers" / "ondemand").is_dir()
    assert "exclude.csv" in {p.name for p in run.out_dir.iterdir()}


@pytest.mark.slow
@pytest.mark.real_data
def test_resnet20_int8_layers_on_a_subset(tmp_path):
    """ResNet-20 / CIFAR-10 (2,000 images, +sweep=int8): the same QDQ model on onnxruntime
    and OpenVINO, and fp32 against NNCF's int8, each with its observer check; the probes
    reproduce the run's top-1 on every analysed image."""
    from .conftest import SHARED_DATA

    if not (SHARED_DATA / "cifar10-test").exists():
        pytest.skip(f"{SHARED_DATA / 'cifar10-test'} is absent")
    pytest.importorskip("nncf", reason="pip install 'evalharness[int8]'")
    from evalharness.runner.layers import run_layers

    out = tmp_path / "run"
    overrides = ["model=resnet20_cifar", "dataset=cifar10_test", "+sweep=int8",
                 "dataset.limit=2000", "dataset.limit_spread=true",
                 f"cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    run_in_process(overrides, out)
    pairs = [
        ({"backend": "onnxruntime", "precision": "int8_ort"}, {"backend": "openvino"}),
        ({"backend": "openvino", "precision": "fp32"}, {"precision": "int8_nncf"}),
    ]
    for a, b in pairs:
        run = run_layers(out, a, b, n=32)
        r = run.result
        assert run.n_flips > 0 and r.n_flipped == min(32, run.n_flips) and r.n_control == 32
        assert run.reproduced == (r.n_flipped + r.n_control,) * 2, run.reproduced
        assert len(r.observer_lines()) == 2 and r.observer[0].n_images == r.n_flipped + r.n_control
        assert r.parting_layer is not None and "part at layer" in run.verdict
        assert len(r.table) >= 30  # ResNet-20's QDQ points (36) or float tensors (55)
        print(run.verdict, run.seconds)


@pytest.mark.slow
def test_torch_ncnn_and_refused_runtimes_through_their_backends(tmp_path):
    """torch (hooks) and ncnn (aligned blobs) probes come from their backends; a runtime
    without probes (tract) is refused in one line naming those that have them."""
    import importlib.util

    from evalharness.runner.layers import run_layers

    backends = ["torch", "onnxruntime"]
    have_ncnn = importlib.util.find_spec("ncnn") and importlib.util.find_spec("pnnx")
    backends += ["ncnn"] if have_ncnn else []
    backends += ["tract"] if importlib.util.find_spec("tract") else []

    def sweep(config: dict) -> None:
        config["sweep"] = {"factors": {"backend": backends}}

    out = tmp_path / "run"
    run_in_process(["dataset.limit=80", "dataset.limit_spread=true"], out, sweep)
    run = run_layers(out, {"backend": "torch"}, {"backend": "onnxruntime"}, n=8)
    r = run.result
    assert {s.runtime for s in run.sides} == {"torch", "onnxruntime"}
    assert len(r.table) >= 10 and r.table["rel_l2_control_med"].max() < 1e-4  # fp32 alike
    assert all(c.max_abs_diff == 0 for c in r.observer[:1])  # hooks move nothing
    if have_ncnn:
        run = run_layers(out, {"backend": "onnxruntime"}, {"backend": "ncnn"}, n=8)
        assert "no name map" in " ".join(run.result.unmatched_b.values())
        assert "logits" in run.result.table.index
    if "tract" in backends:
        with pytest.raises(ValueError, match="cannot expose intermediate tensors; layers probes"):
            run_layers(out, {"backend": "onnxruntime"}, {"backend": "tract"})
