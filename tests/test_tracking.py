"""tracking=mlflow: one MLflow run per sweep in a SQLite store, read back with a plain client."""

import pandas as pd
import pytest

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

    args = [*SWEEP, f"tracking.uri={_uri(tmp_path)}", *extra]
    plan = plan_of(args)
    execute(plan, tmp_path / "run")
    return tmp_path / "run", finish(plan, tmp_path / "run")


def _uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"


def _client(tmp_path, monkeypatch=None):
    """MlflowClient as a user makes it: no MLFLOW_ALLOW_FILE_STORE, no evalharness code."""
    pytest.importorskip("mlflow", reason="pip install -e '.[mlflow]'")
    pytest.importorskip("sqlalchemy", reason="pip install -e '.[mlflow]'")
    import os

    from mlflow.tracking import MlflowClient

    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ
    return MlflowClient(tracking_uri=_uri(tmp_path))


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
    common = f"tracking.uri={_uri(tmp_path)}"  # the store the merge logs to, named by the
    shards, finished = zip(  # shards' own config (a run dir's files are not edited after)
        *[_sweep(tmp_path / f"s{i}", "shard.count=2", f"shard.index={i}", common)
          for i in (0, 1)],
        strict=True,
    )  # fmt: skip
    assert all(done.tracking is None for done in finished)  # a shard is not the sweep
    db = tmp_path / "store" / "mlflow.db"
    if db.exists():  # nothing was logged there by the shards
        assert not client.search_runs([e.experiment_id for e in client.search_experiments()])
    capsys.readouterr()
    merged = tmp_path / "merged"
    assert merge_main([str(merged), *map(str, shards)]) == 0
    assert "mlflow: run " in capsys.readouterr().out
    exp, parent = _parent(client, merged.resolve())
    summary = pd.read_csv(merged / "summary.csv")
    assert parent.data.params["configs"] == str(len(summary)) == "4"
    assert parent.data.params["n"] == "40"


def test_the_store_is_checked_before_the_sweep(tmp_path):
    """An http store that does not answer, a folder that cannot be made: one line each,
    within the timeout, before the run dir exists."""
    import time

    from evalharness.runner.run import execute
    from evalharness.tracking import UnreachableTrackerError

    start = time.monotonic()
    with pytest.raises(
        UnreachableTrackerError,
        match=r"tracking.uri http://127.0.0.1:9: no "
        r"MLflow server answers within 2 s .*\(or tracking=none\)",
    ):
        check_tracking({"kind": "mlflow", "uri": "http://127.0.0.1:9", "timeout_s": 2})
    assert time.monotonic() - start < 10
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UnreachableTrackerError, match="cannot create"):
        check_tracking({"kind": "mlflow", "uri": f"sqlite:///{blocker / 'x' / 'mlflow.db'}"})
    with pytest.raises(UnreachableTrackerError):
        execute(plan_of([*SWEEP, "tracking.uri=http://127.0.0.1:9"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_default_store_is_sqlite_in_the_data_folder_never_the_cwd(tmp_path, monkeypatch):
    from evalharness.tracking.mlflow import artifact_location, store_uri

    monkeypatch.setenv("EVALHARNESS_HOME", str(tmp_path / "home"))
    uri = store_uri({"kind": "mlflow", "uri": None})
    assert uri == f"sqlite:///{tmp_path / 'home' / 'mlflow' / 'mlflow.db'}"
    assert artifact_location(uri) == (tmp_path / "home" / "mlflow" / "mlartifacts").as_uri()
    monkeypatch.chdir(tmp_path)
    assert store_uri({"uri": "sqlite:///rel.db"}) == f"sqlite:///{tmp_path / 'rel.db'}"


def test_a_failure_after_the_sweep_keeps_the_results_and_says_so(tmp_path, monkeypatch):
    import evalharness.tracking.mlflow as tracker
    from evalharness.commands.sweep import print_finished
    from evalharness.tracking import TRACKING_FAILED

    def down(*a, **k):
        raise ConnectionError("server went away\nmore")

    monkeypatch.setattr(tracker, "log_run", down)
    run_dir, done = _sweep(tmp_path)
    assert done.tracking is None and "could not log the sweep: ConnectionError: server went " \
        "away" in done.tracking_error  # fmt: skip
    assert (run_dir / "summary.csv").exists() and done.findings
    with pytest.raises(SystemExit) as e:
        print_finished(done, run_dir)
    assert e.value.code == TRACKING_FAILED == 3


@pytest.mark.slow
def test_the_command_line_logs_to_the_default_store_and_not_the_cwd(tmp_path):
    """`evalharness ... tracking=mlflow` from an empty folder: the runs are in the SQLite
    store under EVALHARNESS_HOME, read back by a plain MlflowClient; no mlruns/ in the cwd.
    An unreachable server is refused in one line, exit 2, nothing written."""
    import os
    import subprocess
    import sys

    pytest.importorskip("sqlalchemy", reason="pip install -e '.[mlflow]'")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "EVALHARNESS_HOME": str(tmp_path / "home")}
    env.pop("MLFLOW_ALLOW_FILE_STORE", None)
    cmd = [sys.executable, "-m", "evalharness", *SWEEP, "hydra.run.dir=run"]
    r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in work.iterdir()) == ["run"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'home' / 'mlflow' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("evalharness")
    runs = client.search_runs([exp.experiment_id], "tags.`evalharness.run_dir` LIKE '%run'")
    assert len(runs) == 1  # the parent (its children carry no run_dir tag)
    r = subprocess.run([*cmd[:-1], "hydra.run.dir=run2", "tracking.uri=http://127.0.0.1:9",
                        "tracking.timeout_s=2"], cwd=work, env=env, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith(
        "error: tracking.uri http://127.0.0.1:9: no MLflow server answers within 2 s"
    )
    assert not (work / "run2").exists()
