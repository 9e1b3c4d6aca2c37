"""One MLflow run per sweep: factors as params, configs as child runs, files as artifacts.

Layout in MLflow (what a reader of the UI finds):
- the parent run (`<sweep or model>/<run dir name>`): params model, dataset, n (images per
  config), configs, metric, sweep, and each factor with the values the sweep took
  (`resize: pil_bilinear,cv2_linear,...`); metrics `reference/<col>` and `worst/<col>` for
  the task's metric columns (with their 95% interval bounds) and agree_ref; tags with the
  run dir, the plan hash and every library version; artifacts summary.csv, configs.csv,
  errors.csv, findings.md and report.html / report.md when written;
- one child run per config (tag mlflow.parentRunId), named by its factor values, with
  every factor as a param and its metric columns, agree_ref, n, n_errors and images/s as
  metrics -- when the sweep has at most `max_child_runs` configs. Beyond that the UI is no
  place to read them: summary.csv (the artifact) is the per-config table.

Uses MlflowClient directly (no global active run), so logging never leaks into a user's own
MLflow session. The default store is SQLite in the user's data folder (paths.data_dir()), the
store MLflow itself recommends since file stores went into maintenance mode; a plain
MlflowClient reads it back with no flag. Artifacts go beside the database (mlartifacts/),
never into the working directory, where MLflow would put them by default.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

ARTIFACTS = ("summary.csv", "configs.csv", "errors.csv", "findings.md", "report.html", "report.md")
BATCH = 100  # MLflow takes at most 100 params / 1000 metrics per log_batch call


@dataclass
class Logged:
    uri: str
    experiment: str
    run_id: str
    children: int


SQLITE = "sqlite:///"
# MLflow retries an unreachable server for minutes by default; a sweep's logging should fail
# in seconds (the results are on disk and a re-run logs them again).
HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def default_uri() -> str:
    """sqlite:///<data dir>/mlflow/mlflow.db (paths.data_dir: never the working directory)."""
    from evalharness.paths import data_dir

    return SQLITE + str((data_dir() / "mlflow" / "mlflow.db").absolute())


def store_uri(settings: Any) -> str:
    """The configured store, made absolute (`file:./mlruns` must not move with the cwd)."""
    return resolve_uri(str((settings or {}).get("uri") or default_uri()))


def resolve_uri(uri: str) -> str:
    if uri.startswith("file:") and not uri.startswith("file://"):
        return Path(uri[len("file:") :]).expanduser().resolve().as_uri()
    if uri.startswith(SQLITE) and not uri.startswith(SQLITE + "/"):  # sqlite:///rel.db
        return SQLITE + str(Path(uri[len(SQLITE) :]).expanduser().absolute())
    return uri


def _local_folder(uri: str) -> Path | None:
    """The folder a local store lives in (the SQLite file's, the file store's)."""
    if uri.startswith(SQLITE):
        return Path(uri[len(SQLITE) :]).parent
    if uri.startswith("file://"):
        return Path(uri[len("file://") :])
    return None


def check_store(uri: str, timeout_s: float = 5.0) -> str | None:
    """Why the store cannot be used, or None: an http(s) server that does not answer within
    timeout_s, a local folder that cannot be created or written."""
    if uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s).close()
        except urllib.error.HTTPError:
            return None  # it answered: a server is there (auth, an old version, ...)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            return f"no MLflow server answers within {timeout_s:g} s ({reason})"
        return None
    folder = _local_folder(uri)
    if folder is None:
        return None  # databricks, another database: MLflow checks it when it logs
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create {folder} ({e.strerror or e})"
    if not os.access(folder, os.W_OK):
        return f"cannot write to {folder}"
    return None


def artifact_location(uri: str) -> str | None:
    """Artifacts beside a local store (MLflow's default is ./mlartifacts in the cwd)."""
    folder = _local_folder(uri)
    if folder is None or uri.startswith("file://"):
        return None  # a server or a file store: it decides
    return (folder / "mlartifacts").as_uri()


def client_for(uri: str):
    """An MlflowClient on this URI; a `file:` store (asked for explicitly) is opted into."""
    from mlflow.tracking import MlflowClient

    uri = resolve_uri(uri)
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    for key, value in HTTP_ENV.items():
        os.environ.setdefault(key, value)
    return MlflowClient(tracking_uri=uri)


def _summary(run_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    from evalharness.rundir.summary import summary_factors

    summary = pd.read_csv(run_dir / "summary.csv", dtype=str, keep_default_na=False)
    return summary, summary_factors(summary)


def _number(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) or math.isinf(x) else x


def _metric_cols(summary: pd.DataFrame, task) -> list[str]:
    cols = [*task.metric_columns, "agree_ref", "agree_ref_lo", "agree_ref_hi"]
    return [c for c in cols if c in summary]


def _batches(client, run_id: str, params: dict[str, str], metrics: dict[str, float]) -> None:
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    p = [Param(k, str(v)[:6000]) for k, v in params.items()]
    m = [Metric(k, v, now, 0) for k, v in metrics.items() if v is not None]
    for i in range(0, max(len(p), len(m)), BATCH):
        client.log_batch(run_id, metrics=m[i : i + BATCH], params=p[i : i + BATCH])


def _experiment_id(client, name: str, uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location(uri))


def _parent(summary: pd.DataFrame, factors: list[str], metric: str, sweep: str | None):
    """The sweep's params: what was evaluated, and the values each factor took."""
    return {
        "model": summary.model.iloc[0],
        "dataset": summary.dataset.iloc[0],
        "n": summary.n.iloc[0],
        "configs": len(summary),
        "metric": metric,
        "sweep": sweep or "",
        **{f: ",".join(dict.fromkeys(summary[f])) for f in factors},
    }


def _headline(summary: pd.DataFrame, metric: str, cols: list[str]) -> dict[str, float | None]:
    """reference/<col> and worst/<col>: the two rows a sweep is read by."""
    rows = {}
    ref = summary[summary.reference.str.lower() == "true"]
    if len(ref):
        rows["reference"] = ref.iloc[0]
    values = summary[metric].map(_number)
    if values.notna().any():
        rows["worst"] = summary.loc[values.idxmin()]
    return {f"{label}/{c}": _number(row[c]) for label, row in rows.items() for c in cols}


def _children(client, exp_id: str, parent: str, summary, factors, cols) -> int:
    """One child run per config: every factor a param, the numbers as metrics."""
    varying = [f for f in factors if summary[f].nunique() > 1] or factors[:1]
    numbers = [c for c in [*cols, "n", "n_errors", "images_per_s"] if c in summary]
    for _, row in summary.iterrows():
        tags = {
            "mlflow.parentRunId": parent,
            "mlflow.runName": " ".join(f"{f}={row[f]}" for f in varying),
            "evalharness.config_id": row.config_id,
            "evalharness.reference": row.reference,
        }
        child = client.create_run(exp_id, tags=tags).info.run_id
        params = {"config_id": row.config_id, **{f: row[f] for f in factors}}
        _batches(client, child, params, {c: _number(row[c]) for c in numbers})
        client.set_terminated(child)
    return len(summary)


def log_run(run_dir: Path, settings: Any, sweep_name: str | None = None) -> Logged:
    """Log the finished run dir; returns where it went."""
    from evalharness.analysis.results import task_of_run

    uri = store_uri(settings)
    client = client_for(uri)
    experiment = str(settings.get("experiment") or "evalharness")
    exp_id = _experiment_id(client, experiment, uri)
    run_dir = Path(run_dir).resolve()
    summary, factors = _summary(run_dir)
    task = task_of_run(run_dir)
    cols = _metric_cols(summary, task)
    plan_file = run_dir / "plan.json"
    plan = json.loads(plan_file.read_text()) if plan_file.exists() else {}
    name = settings.get("run_name") or f"{sweep_name or summary.model.iloc[0]}/{run_dir.name}"
    tags = {
        "mlflow.runName": str(name),
        "evalharness.run_dir": str(run_dir),
        "evalharness.plan_hash": str(plan.get("plan_hash", "")),
        "evalharness.dataset_hash": str(summary.dataset_hash.iloc[0]),
        **{f"evalharness.{c}": str(summary[c].iloc[0]) for c in summary if c.startswith("v_")},
    }
    parent = client.create_run(exp_id, tags=tags).info.run_id
    params = _parent(summary, factors, task.metric, sweep_name)
    _batches(client, parent, params, _headline(summary, task.metric, cols))
    children = 0
    if len(summary) <= int(settings.get("max_child_runs", 100)):
        children = _children(client, exp_id, parent, summary, factors, cols)
    for artifact in ARTIFACTS:
        if (run_dir / artifact).exists():
            client.log_artifact(parent, str(run_dir / artifact))
    client.set_terminated(parent)
    return Logged(uri, experiment, parent, children)
