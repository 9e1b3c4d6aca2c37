"""The sweep engine: memoization counts, agreement with the plain pipeline, resume, errors."""

import json

import numpy as np
import pandas as pd
import pytest

from evalharness.rundir.claim import PlanMismatchError

from .conftest import run_in_process
from .helpers import demo_subset

SMALL_SWEEP = [
    "+sweep=preproc_ablation",
    "sweep.factors.backend=[torch,onnxruntime]",
    "sweep.factors.resize=[pil_bilinear,cv2_linear]",
    "dataset.limit=40",
    "chunk_size=16",
]


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    """One run of a 2 x 3 x 2 x 2 = 24-config sweep over 40 samples, shared by the tests."""
    return run_in_process(SMALL_SWEEP, tmp_path_factory.mktemp("sweep"))


def test_each_unique_stage_prefix_is_computed_once(small_sweep):
    summary, out = small_sweep
    stats = json.loads((out / "stats.json").read_text())
    assert len(summary) == 24
    assert stats["decode_calls"] == 40 * 3  # samples x decoders, not x configs
    # Each unique prefix is asked for once; when two decoders gave the same bytes the stage
    # reuses the first result (byte-checked) instead of computing it again.
    for kind, n in [("resize", 40 * 3 * 2), ("colour", 40 * 3 * 2), ("normalize", 40 * 3 * 2 * 2)]:
        assert stats[f"{kind}_calls"] + stats.get(f"{kind}_reused_calls", 0) == n, kind
    assert stats.get("resize_reused_calls", 0) > 0  # these JPEGs decode alike in all three decoders
    assert stats["infer_requested"] == 40 * 24
    # Pillow, OpenCV and torchvision.io decode these JPEGs alike: most tensors repeat
    assert stats["infer_unique"] < 40 * 24 * 0.5
    assert stats["infer_saving"] == pytest.approx(1 - stats["infer_unique"] / (40 * 24), abs=1e-4)
    assert stats["variant_load_calls"] == 4  # 2 backends x 2 placements, once each


@pytest.mark.parametrize("setting", ["dedup=false", "workers=1", "memory_budget=2400000"])
def test_predictions_do_not_depend_on_dedup_workers_or_budget(small_sweep, run_app, setting):
    """Dedup off, one worker, or pipelines split into many groups by a tiny memory budget:
    the same predictions (logits within 1e-6 where a backend's arithmetic depends on the
    batch; the predictions table holds label_logit)."""
    summary, out = small_sweep
    other, run_dir = run_app([*SMALL_SWEEP, setting])
    a = pd.read_parquet(out / "predictions.parquet")
    b = pd.read_parquet(run_dir / "predictions.parquet")
    cols = ["sample_id", "config_id", "pred", "correct1", "correct5", "error"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert np.abs(a.label_logit - b.label_logit).max() <= 1e-6
    stats = json.loads((run_dir / "stats.json").read_text())
    if setting == "dedup=false":
        assert stats["infer_unique"] == stats["infer_requested"] == 40 * 24


def test_outputs_have_the_documented_form(small_sweep):
    summary, out = small_sweep
    for col in [
        "config_id",
        "backend",
        "decoder",
        "resize",
        "norm",
        "n",
        "n_errors",
        "top1",
        "top1_lo",
        "top1_hi",
        "top5",
        "images_per_s",
        "v_pillow_jpeg",
        "v_opencv_jpeg",
        "dataset_hash",
    ]:
        assert col in summary.columns, col
    preds = pd.read_parquet(out / "predictions.parquet")
    assert len(preds) == 40 * 24
    assert not preds.duplicated(["sample_id", "config_id"]).any()
    configs = pd.read_csv(out / "configs.csv")
    assert set(configs.config_id) == set(summary.config_id)
    assert (summary.top1_lo <= summary.top1).all() and (summary.top1 <= summary.top1_hi).all()
    row = summary.iloc[0]
    mine = preds[preds.config_id == row.config_id]
    assert row.top1 == pytest.approx(mine.correct1.mean() * 100)


def test_memoized_engine_agrees_with_the_plain_pipeline(small_sweep, export_cache):
    """Every prediction equals what running the stages one sample at a time gives."""
    from evalharness.backends.base import BACKENDS
    from evalharness.preprocess.pipeline import run_pipeline

    from .conftest import plan_of

    summary, out = small_sweep
    preds = pd.read_parquet(out / "predictions.parquet")
    plan = plan_of(SMALL_SWEEP)
    ds = plan.dataset
    for spec in plan.specs[::7]:
        session = BACKENDS.get(spec.variant.backend)().load(spec.variant, str(export_cache))
        x = np.stack([run_pipeline(spec.stages, s.path).pixels for s in ds.samples])
        expected = session.infer(x)["logits"].argmax(1)
        got = preds[preds.config_id == spec.config_id].sort_values("sample_index").pred
        assert (got.to_numpy() == expected).all(), spec.factor_dict


def test_resume_recomputes_only_missing_parts(small_sweep, run_app, tmp_path):
    summary, out = small_sweep
    run_dir = tmp_path / "resumed"
    run_app(SMALL_SWEEP, run_dir)
    for part in ["chunk-00001.parquet", "chunk-00002.parquet"]:
        (run_dir / "parts" / part).unlink()
    (run_dir / "predictions.parquet").unlink()
    resumed, _ = run_app(SMALL_SWEEP, run_dir)
    stats = json.loads((run_dir / "stats.json").read_text())
    assert stats["chunks_computed"] == 2 and stats["chunks_resumed"] == 1
    a = pd.read_parquet(out / "predictions.parquet")
    b = pd.read_parquet(run_dir / "predictions.parquet")
    pd.testing.assert_frame_equal(a, b)
    cols = ["config_id", "n", "n_errors", "top1", "top5"]
    pd.testing.assert_frame_equal(summary[cols], resumed[cols])


def test_a_run_dir_of_another_sweep_is_refused(small_sweep, run_app):
    _, out = small_sweep
    with pytest.raises(PlanMismatchError, match="different sweep"):
        run_app(["dataset.limit=40", "chunk_size=16"], out)


def test_bad_files_become_error_rows_and_the_sweep_completes(run_app, tmp_path):
    bad = {"empty.jpg": b"", "garbage.jpg": b"this is not a jpeg", "missing_later.jpg": b"x"}
    overrides = demo_subset(tmp_path / "ds", 12, bad)
    (tmp_path / "ds" / "images" / "missing_later.jpg").unlink()
    summary, out = run_app(
        [
            *overrides,
            "+sweep=preproc_ablation",
            "sweep.factors.backend=[torch]",
            "sweep.factors.resize=[pil_bilinear]",
            "sweep.factors.norm=[host]",
        ]
    )
    assert len(summary) == 3
    assert (summary.n == 15).all() and (summary.n_errors == 3).all()
    errors = pd.read_csv(out / "errors.csv")
    assert set(errors.stage) == {"decode"}
    assert errors.reason.str.contains("file not found").any()
    preds = pd.read_parquet(out / "predictions.parquet")
    assert (preds[preds.error_stage.notna()].pred == -1).all()


def test_a_plan_over_1000_configs_warns_with_a_probed_estimate(run_app, library_log, monkeypatch):
    from evalharness.engine import loop

    monkeypatch.setattr(loop, "WARN_CONFIGS", 10)  # the demo's 24 configs count as "large"
    run_app(SMALL_SWEEP)
    line = next(r.getMessage() for r in library_log.records if r.levelname == "WARNING")
    assert "24 configs x 40 samples = 960 evaluations; about" in line
    assert "expected from a 2-sample probe" in line


def test_a_chunk_too_big_for_the_memory_budget_is_cut_smaller(run_app):
    """Demo tensors are 64 x 64 x 3 float32 (49 KB, twice that with outputs): a 400 KB
    budget holds 4 samples a chunk; the plan records the fitted size, so a resume agrees."""
    from .conftest import plan_of

    overrides = ["dataset.limit=10", "chunk_size=64", "memory_budget=400000"]
    plan = plan_of(overrides)  # the plan says so up front (the sweep prints its notes)
    assert any("chunk_size 64 -> 4" in note for note in plan.notes)
    assert plan.options.chunk_size == 4
    summary, out = run_app(overrides)
    assert json.loads((out / "plan.json").read_text())["chunk_size"] == 4
    assert (summary.n == 10).all()
    again, _ = run_app(overrides, out)  # same plan: nothing to redo, no mismatch
    pd.testing.assert_frame_equal(summary, again)


def test_a_sample_over_the_memory_budget_is_refused_before_the_run_dir(run_app, tmp_path):
    with pytest.raises(ValueError, match="one sample's host tensors need about .* raise"):
        run_app(["dataset.limit=4", "memory_budget=1000"], tmp_path / "never")
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("device,expected", [("cpu", 4), ("cuda", 64)])
def test_the_cards_cpu_batch_size_does_not_shrink_gpu_batches(device, expected):
    """EfficientNet-Lite0's card asks for batch 4 (CPU caches); on an H100 that made 1,300
    batches of 4 for 1,300 images x 4 configs. A GPU variant batches by the config's 64."""
    from types import SimpleNamespace

    from evalharness.config.options import SweepOptions
    from evalharness.engine.infer import VariantInference
    from evalharness.preprocess.geometry import Frame

    session = SimpleNamespace(input=SimpleNamespace(fixed_batch=None))
    variant = SimpleNamespace(device=device)
    tensors = [Frame(np.full((3, 2, 2), i, np.float32), None) for i in range(100)]
    spec = SimpleNamespace(config_id="c")
    opts = SweepOptions(batch_size=4, gpu_batch_size=64)
    inference = VariantInference(session, variant, [(spec, tensors)], opts, None)
    assert max(len(b) for b in inference.prepare()) == expected
