"""Int8 as a precision factor: calibration held out of every config, cached quantized models,
what runs where, agreement with the reference, explain's joint term for what cannot mix."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from evalharness.analysis.explain import explain
from evalharness.config.plan import PlanError
from evalharness.data.calibration import choose, hold_out
from evalharness.data.dataset import load_dataset
from evalharness.runner.ondemand import RunDirConfigs

from .conftest import SHARED_DATA, compose_config, run_in_process

pytest.importorskip("nncf", reason="pip install 'evalharness[int8]'")

SWEEP = ["+sweep=int8", "dataset.limit=160", "calibration.n=40", "chunk_size=40"]


@pytest.fixture(scope="module")
def int8_cache(tmp_path_factory):
    """The module's own model cache: nothing is quantized in it before int8_run."""
    return f"cache_dir={tmp_path_factory.mktemp('int8-cache')}"


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory, int8_cache):
    return run_in_process([*SWEEP, int8_cache], tmp_path_factory.mktemp("int8"))


def test_calibration_choice_is_deterministic_balanced_and_never_scored(int8_run):
    summary, out = int8_run
    cfg, _ = compose_config(SWEEP)
    ds = load_dataset(cfg.dataset)
    calib = choose(ds, 40, balanced=True)  # a classification task labels its classes
    assert [s.sample_id for s in calib] == [s.sample_id for s in choose(ds, 40, True)]
    per_class = pd.Series([s.label for s in calib]).value_counts()
    assert per_class.min() == per_class.max() == 4  # 10 classes, 16 images each: balanced
    scored = set(pd.read_parquet(out / "predictions.parquet").sample_id)
    assert scored.isdisjoint(s.sample_id for s in calib)
    assert (summary.n == 120).all()  # every config, the fp32 reference included
    assert hold_out(ds, calib).content_hash != ds.content_hash
    written = pd.read_csv(out / "calibration.csv", dtype=str)
    assert written.sample_id.tolist() == [s.sample_id for s in calib]
    from evalharness.analysis.findings import findings  # (quiet runs write no findings.md)

    assert "int8 calibrated on 40 images held out of demo, scored by no config" in "\n".join(
        findings(out, max_on_demand=0).facts
    )


def test_every_runnable_combination_has_a_row_and_an_agreement(int8_run):
    summary, out = int8_run
    rows = set(zip(summary.backend, summary.precision, strict=True))
    assert rows == {
        ("onnxruntime", "fp32"), ("onnxruntime", "int8_ort"), ("openvino", "fp32"),
        ("openvino", "int8_ort"), ("openvino", "int8_nncf"), ("torch", "fp32"),
    }  # fmt: skip
    int8 = summary[summary.precision.str.startswith("int8")]
    assert (int8.precision_ran == "int8").all()
    assert (int8.agree_ref_lo <= int8.agree_ref).all() and (int8.agree_ref <= 100).all()
    preds = pd.read_parquet(out / "predictions.parquet")
    fp32 = summary.query("backend == 'onnxruntime' and precision == 'fp32'").config_id.iloc[0]
    q = summary.query("backend == 'onnxruntime' and precision == 'int8_ort'").config_id.iloc[0]
    logit = preds.set_index(["config_id", "sample_id"]).label_logit
    assert (logit[q] - logit[fp32]).abs().max() > 1e-3  # int8 arithmetic really ran


def test_a_second_run_reuses_the_quantized_models(int8_run, int8_cache, tmp_path):
    _, out = int8_run
    assert json.loads((out / "stats.json").read_text())["quantize_seconds"] > 0  # fresh cache
    _, again = run_in_process([*SWEEP, int8_cache], tmp_path / "again")
    assert json.loads((again / "stats.json").read_text())["quantize_seconds"] == 0


def test_a_users_onnx_is_quantized_in_the_cache_never_beside_it(tmp_path, export_cache):
    """model=onnx_file with int8 on both runtimes: the user's folder (read-only here) keeps
    exactly its one file, and both int8 configs score with their own quantized model."""
    from evalharness.backends.export import export_onnx
    from evalharness.models.source import ModelSpec

    cfg, _ = compose_config([])
    user_dir = tmp_path / "models"
    user_dir.mkdir()
    onnx_path = user_dir / "model.onnx"
    onnx_path.write_bytes(export_onnx(ModelSpec.from_config(cfg.model), export_cache).read_bytes())
    user_dir.chmod(0o555)
    try:

        def users_onnx(cfg):
            cfg["model"].update(source="onnx", weights=str(onnx_path))
            cfg["sweep"]["factors"] = {
                "backend": ["onnxruntime", "openvino"],
                "precision": ["fp32", "int8_ort"],
            }

        summary, out = run_in_process(
            [*SWEEP, f"cache_dir={tmp_path / 'cache'}"], tmp_path / "run", cfg_edit=users_onnx
        )
    finally:
        user_dir.chmod(0o755)
    assert [p.name for p in user_dir.iterdir()] == ["model.onnx"]
    int8 = summary[summary.precision == "int8_ort"]
    assert set(int8.backend) == {"onnxruntime", "openvino"} and (int8.n == 120).all()
    assert (int8.precision_ran == "int8").all() and int8.agree_ref.between(50, 100).all()
    assert json.loads((out / "stats.json").read_text())["quantize_seconds"] > 0


def test_the_findings_of_one_int8_command_give_its_delta_and_agreement(tmp_path):
    """`precision=int8_ort backend=onnxruntime`: the reference is torch fp32, so no factor
    changes alone; the findings still say the int8 config's paired difference and agree_ref."""
    from evalharness.analysis.findings import findings

    summary, out = run_in_process(_ort_int8([]), tmp_path / "one")
    text = findings(out, max_on_demand=0).markdown()
    q = summary[~summary.reference].iloc[0]
    line = next(ln for ln in text.splitlines() if ln.startswith("- backend=onnxruntime precision"))
    assert f"top1 {q.top1:.2f} [{q.top1_lo:.2f}, {q.top1_hi:.2f}]" in line
    assert "; against the reference " in line and "image(s) worse" in line
    assert any(w in line for w in ("changes the result", "no effect within", "inconclusive"))
    assert f"agree_ref {q.agree_ref:.2f} [{q.agree_ref_lo:.2f}, {q.agree_ref_hi:.2f}]%" in line


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["precision=int8_ort", "backend=torch"], "precision 'int8_ort' not on torch"),
        (["precision=int8_nncf", "backend=onnxruntime"], "precision 'int8_nncf' not on onnx"),
        (["precision=int8_nncf", "backend=openvino", "norm=ov_ppp"], "int8 with norm 'ov_ppp'"),
    ],
)
def test_what_cannot_run_is_refused_at_planning(tmp_path, overrides, message):
    with pytest.raises(PlanError, match=message):
        run_in_process([*SWEEP[1:], *overrides], tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_explain_makes_quantizer_and_runtime_one_term_when_they_cannot_mix(int8_run):
    _, out = int8_run
    result = explain(
        out, RunDirConfigs(out), {"backend": "onnxruntime"},
        {"backend": "openvino", "precision": "int8_nncf"}, None, 200,
    )  # fmt: skip
    att = result.tables["attribution"]
    terms = att[att.factor != "residual"]
    assert terms.factor.tolist() == ["backend+precision"]
    assert "one joint term" in result.verdict and "not on onnxruntime" in result.verdict
    # quantizer vs runtime where both mix: int8_ort runs on both backends
    split = explain(
        out, RunDirConfigs(out), {"backend": "onnxruntime"},
        {"backend": "openvino", "precision": "int8_ort"}, None, 200,
    ).tables["attribution"]  # fmt: skip
    assert set(split.factor) == {"backend", "precision", "residual"}


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.skipif(not SHARED_DATA.exists(), reason=f"{SHARED_DATA} is absent")
def test_resnet20_int8_ort_keeps_top1_within_half_a_point(tmp_path):
    """ResNet-20 on CIFAR-10 JPEG: int8_ort on onnxruntime within 0.5 points of fp32, some
    images changing their answer (agree_ref below 100, with its interval)."""
    summary, _ = run_in_process(
        ["model=resnet20_cifar", "dataset=cifar10_test", "precision=int8_ort",
         "backend=onnxruntime"],
        tmp_path / "run",
    )  # fmt: skip
    ref = summary[summary.reference].iloc[0]
    q = summary[~summary.reference].iloc[0]
    assert ref.n == q.n == 10_000 - 300
    assert abs(q.top1 - ref.top1) <= 0.5
    assert q.agree_ref < 100 and q.agree_ref_lo < q.agree_ref < q.agree_ref_hi


def _method_sweep(cfg):
    cfg["sweep"]["factors"] = {
        "precision": ["fp32", "int8_ort"],
        "backend": ["onnxruntime"],
        "precision.calibration_method": ["minmax", "entropy"],
    }


def test_a_calibration_method_sweep_changes_the_int8_configs_only_and_explains(tmp_path):
    """fp32 has no calibration_method: it runs once (its column "-"), the reference row is
    found again from the CSV, and explain splits quantizer settings from runtime."""
    summary, out = run_in_process(SWEEP, tmp_path / "run", cfg_edit=_method_sweep)
    rows = set(zip(summary.backend, summary.precision, summary.calibration_method, strict=True))
    assert rows == {
        ("onnxruntime", "fp32", "-"), ("onnxruntime", "int8_ort", "minmax"),
        ("onnxruntime", "int8_ort", "entropy"), ("torch", "fp32", "-"),
    }  # fmt: skip
    csv = pd.read_csv(out / "configs.csv", dtype=str, keep_default_na=False)
    assert set(csv.calibration_method) == {"-", "minmax", "entropy"}
    result = explain(
        out, RunDirConfigs(out), {}, {"backend": "onnxruntime", "precision": "int8_ort",
                                      "calibration_method": "entropy"}, None, 100,
    )  # fmt: skip
    att = result.tables["attribution"].set_index("factor")
    # torch cannot run int8_ort: backend+precision is one term; the method is its own
    assert "calibration_method" in att.index and "backend+precision" in att.index
    assert not (out / "explain" / "ondemand").exists()  # (int8_ort, minmax) was in the sweep
    assert abs(att.shapley.sum() - result.gap) < 1e-9


def test_a_setting_no_option_has_is_named(tmp_path):
    def typo(cfg):
        cfg["sweep"]["factors"] = {
            "precision": ["fp32", "int8_ort"],
            "backend": ["onnxruntime"],
            "precision.calibration_methd": ["minmax", "entropy"],
        }

    with pytest.raises(PlanError, match="no option of precision in this sweep has a setting "
                       "'calibration_methd'"):  # fmt: skip
        run_in_process(SWEEP, tmp_path / "run", cfg_edit=typo)
    assert not (tmp_path / "run").exists()


def _ort_int8(overrides):
    return [*SWEEP[1:], "backend=onnxruntime", "precision=int8_ort", *overrides]


def test_the_quantized_model_follows_the_preprocessing_it_calibrated_through(tmp_path):
    """Same model, same images, another resize: the calibration tensors differ, so the cached
    int8 model must too (reusing it would score one chain with another chain's ranges)."""
    cache = f"cache_dir={tmp_path / 'cache'}"  # its own: nothing quantized before this test
    dirs = [
        run_in_process(_ort_int8([cache, f"resize={r}"]), tmp_path / str(i))[1]
        for i, r in enumerate(["pil_bilinear", "pil_bilinear", "cv2_linear"])
    ]
    seconds = [json.loads((d / "stats.json").read_text())["quantize_seconds"] for d in dirs]
    assert seconds[0] > 0 and seconds[1] == 0 and seconds[2] > 0


def test_shards_and_on_demand_configs_hold_out_the_same_calibration_images(tmp_path):
    whole, out = run_in_process(_ort_int8([]), tmp_path / "whole")
    scored = set(pd.read_parquet(out / "predictions.parquet").sample_id)
    parts = [
        set(pd.read_parquet(d / "predictions.parquet").sample_id)
        for i in (0, 1)
        for d in [
            run_in_process(_ort_int8(["shard.count=2", f"shard.index={i}"]), tmp_path / f"s{i}")[1]
        ]  # fmt: skip
    ]
    assert parts[0].isdisjoint(parts[1]) and parts[0] | parts[1] == scored
    extra = RunDirConfigs(out).evaluate([{"backend": "openvino", "precision": "int8_ort"}])
    assert set(extra.sample_ids) == scored and len(scored) == 120
