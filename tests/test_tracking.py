"""tracking=mlflow: one MLflow run per sweep in a local file store, read back with the client."""

import pandas as pd
import pytest
from omegaconf import OmegaConf

from evalharness.tracking import MissingTrackerError, check_tracking

from .conftest import compose_config, plan_of

SWEEP = [
    "+sweep=preproc_ablation",
    "sweep.factors.backend=[torch]",
    "sweep.factors.decoder=[pil]",
    "sweep.factors.resize=[pil_bilinear,cv2_linear]",
    "dataset.limit=40",
    "progress=false",
    "tracking=mlflow",
]


def _sweep(tmp_path, *extra):
    """Run the sweep and do what a finished sweep does after (findings, report, tracking):
    (run dir, what finishing did)."""
    from evalharness.runner.finish import finish
    from evalharness.runner.run import execute

    args = [*SWEEP, f"tracking.uri=file:{tmp_path / 'mlruns'}", *extra]
    plan = plan_of(args)
    execute(plan, tmp_path / "run")
    return tmp_path / "run", finish(plan, tmp_path / "run")


def _client(tmp_path):
    pytest.importorskip("mlflow", reason="pip install -e '.[mlflow]'")
    from evalharness.tracking.mlflow import client_for

    return client_for(f"file:{tmp_path / 'mlruns'}")


def _parent(client, run_dir):
    exp = client.get_experiment_by_name("evalharness")
    runs = client.search_runs([exp.experiment_id], f"tags.`evalharness.run_dir` = '{run_dir}'")
    assert len(runs) == 1
    return exp, runs[0]


def test_a_sweep_is_one_run_with_a_child_per_config(tmp_path):
    client = _client(tmp_path)
    run_dir, done = _sweep(tmp_path)
    assert done.tracking.startswith("mlflow: run ")
    summary = pd.read_csv(run_dir / "summary.csv")
    exp, parent = _parent(client, run_dir.resolve())
    params = parent.data.params
    assert params["resize"] == "pil_bilinear,cv2_linear" and params["backend"] == "torch"
    assert params["norm"] == "host,graph" and params["metric"] == "top1"
    assert params["n"] == "40" and params["configs"] == str(len(summary))
    ref = summary[summary.reference].iloc[0]
    assert parent.data.metrics["reference/top1"] == pytest.approx(ref.top1)
    assert parent.data.metrics["reference/top1_lo"] == pytest.approx(ref.top1_lo)
    assert parent.data.metrics["worst/top1"] == pytest.approx(summary.top1.min())
    assert parent.data.tags["evalharness.v_torch"] == str(ref.v_torch)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.csv", "configs.csv", "findings.md"} <= artifacts
    children = client.search_runs(
        [exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == len(summary) == 4
    by_id = summary.set_index("config_id")
    for child in children:
        row = by_id.loc[child.data.tags["evalharness.config_id"]]
        assert child.data.metrics["top1"] == pytest.approx(row.top1)
        assert child.data.metrics["agree_ref"] == pytest.approx(row.agree_ref)
        assert child.data.params["resize"] == row.resize and child.info.status == "FINISHED"


def test_above_the_threshold_the_configs_are_the_summary_table(tmp_path):
    client = _client(tmp_path)
    run_dir, _ = _sweep(tmp_path, "tracking.max_child_runs=3", "report=true")
    exp, parent = _parent(client, run_dir.resolve())
    children = client.search_runs(
        [exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert children == []
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.csv", "findings.md", "report.html", "report.md"} <= artifacts


def test_without_mlflow_the_sweep_is_refused_before_any_work(tmp_path, monkeypatch):
    import importlib.util

    from evalharness.runner.run import execute

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    with pytest.raises(MissingTrackerError) as e:
        check_tracking({"kind": "mlflow"})
    assert str(e.value) == (
        "tracking=mlflow needs mlflow-skinny: pip install 'evalharness[mlflow]' (or tracking=none)"
    )
    with pytest.raises(MissingTrackerError):
        execute(plan_of(SWEEP), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_tracking_none_is_the_default_and_an_unknown_kind_is_named():
    cfg, _ = compose_config([])
    assert cfg.tracking.kind == "none"
    check_tracking(cfg.tracking)
    with pytest.raises(ValueError, match="tracking.kind must be one of"):
        check_tracking({"kind": "wandb"})


def test_shards_log_nothing_and_their_merge_logs_the_whole_sweep_once(tmp_path, capsys):
    from evalharness.commands.merge import main as merge_main

    client = _client(tmp_path)
    shards, finished = zip(
        *[_sweep(tmp_path / f"s{i}", "shard.count=2", f"shard.index={i}") for i in (0, 1)],
        strict=True,
    )
    assert all(done.tracking is None for done in finished)  # a shard is not the sweep
    for i in (0, 1):  # each shard's own store: nothing was logged there
        assert client_store_empty(tmp_path / f"s{i}" / "mlruns")
    for d in shards:  # the shards' own config names the store the merge logs to
        cfg = OmegaConf.load(d / "run_config.yaml")
        cfg.tracking.uri = f"file:{tmp_path / 'mlruns'}"
        OmegaConf.save(cfg, d / "run_config.yaml")
    capsys.readouterr()
    merged = tmp_path / "merged"
    assert merge_main([str(merged), *map(str, shards)]) == 0
    assert "mlflow: run " in capsys.readouterr().out
    exp, parent = _parent(client, merged.resolve())
    summary = pd.read_csv(merged / "summary.csv")
    assert parent.data.params["configs"] == str(len(summary)) == "4"
    assert parent.data.params["n"] == "40"


def client_store_empty(store) -> bool:
    return not store.exists() or not any(store.rglob("meta.yaml"))
