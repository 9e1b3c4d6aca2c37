"""What a whole (unsharded) sweep does after its tables: findings.md, report.html when asked,
the MLflow run when asked. Returns what it did; commands print it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evalharness.config.runplan import RunPlan
from evalharness.runner.ondemand import RunDirConfigs


@dataclass
class Finished:
    """What a whole sweep adds after its tables (each '' / None when not asked for)."""

    findings: str = ""
    report: Path | None = None
    tracking: str | None = None
    tracking_error: str | None = None  # logging failed after the sweep; results are on disk


def finish(plan: RunPlan, run_dir: Path, findings: bool = True) -> Finished:
    """Findings, report and tracking of a whole sweep (a shard is not the sweep: nothing)."""
    out = Finished()
    if plan.is_shard:
        return out
    configs = RunDirConfigs(run_dir)
    if findings:
        from evalharness.analysis.findings import write_findings

        out.findings = write_findings(run_dir, configs, dataset=plan.dataset)
    out.report, out.tracking, out.tracking_error = report_and_track(run_dir, plan.config, configs)
    return out


def report_and_track(run_dir: Path, config, configs):
    """report=true writes report.html; tracking=mlflow logs the sweep (merge does the same).
    (report path, tracking line, tracking error): a tracker that fails after the sweep
    leaves the results as they are and says why."""
    report = None
    if config.get("report"):
        from evalharness.report.build import write_report

        report = write_report(run_dir, configs)
    from evalharness.tracking import TrackingError, UnreachableTrackerError, log_sweep

    sweep = (config.get("sweep") or {}).get("name")
    try:
        return report, log_sweep(config.get("tracking"), run_dir, sweep), None
    except (TrackingError, UnreachableTrackerError) as e:
        return report, None, str(e)
