"""Experiment tracking after a sweep: `tracking=none` (default) or `tracking=mlflow`.

The run dir stays the record; a tracker copies the sweep into the team's tracking server
so sweeps can be found and compared there. Trackers are optional extras: a missing one is
named before the sweep starts (`check_tracking`), not after an hour of work.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any


class MissingTrackerError(ValueError):
    """The tracker's package is not installed: one line, the fix."""


TRACKERS = {"none": None, "mlflow": ("mlflow", "mlflow-skinny", "mlflow")}


def _kind(settings: Any) -> str:
    kind = str((settings or {}).get("kind", "none"))
    if kind not in TRACKERS:
        raise ValueError(f"tracking.kind must be one of {sorted(TRACKERS)}, got '{kind}'")
    return kind


def check_tracking(settings: Any) -> None:
    """Refuse, before any work, a tracker whose package is not installed (one line, the fix)."""
    kind = _kind(settings)
    if kind == "none":
        return
    module, package, extra = TRACKERS[kind]
    if importlib.util.find_spec(module) is None:
        raise MissingTrackerError(
            f"tracking={kind} needs {package}: pip install 'evalharness[{extra}]' "
            "(or tracking=none)"
        )


def log_sweep(settings: Any, run_dir: Path, sweep: str | None = None) -> str | None:
    """Log a finished run dir with the configured tracker (the config's `tracking` settings,
    plain data); a line saying where, or None."""
    kind = _kind(settings)
    if kind == "none":
        return None
    check_tracking(settings)
    from evalharness.tracking.mlflow import log_run

    where = log_run(Path(run_dir), settings, sweep)
    return (
        f"mlflow: run {where.run_id} in experiment '{where.experiment}' at {where.uri} "
        f"({where.children} child runs)"
    )
