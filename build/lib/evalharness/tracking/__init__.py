"""Experiment tracking after a sweep: `tracking=none` (default) or `tracking=mlflow`.

The run dir stays the record; a tracker copies the sweep into the team's tracking store so
sweeps can be found and compared there. Everything that can be checked is checked before the
sweep starts (`check_tracking`: the package installed, the store reachable or creatable),
not after an hour of work. What still fails afterwards (a server that went away) leaves the
results as they are and raises `TrackingError`: the command says so and exits with
TRACKING_FAILED, and re-running the same command into the same run dir logs it again without
recomputing anything.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

TRACKING_FAILED = 3  # exit code: the sweep finished and is on disk, logging it did not


class MissingTrackerError(ValueError):
    """The tracker's package is not installed: one line, the fix."""


class UnreachableTrackerError(ValueError):
    """The tracking store cannot be reached or created: one line, before the sweep."""


class TrackingError(RuntimeError):
    """Logging a finished sweep failed; its results are complete in the run dir."""


# kind -> (modules it needs, the pip package that has them, the extra)
TRACKERS = {"none": None, "mlflow": (("mlflow",), "mlflow-skinny", "mlflow")}
SQL_MODULES = ("sqlalchemy", "alembic")  # MLflow's SQLite store (not in mlflow-skinny)


def _kind(settings: Any) -> str:
    kind = str((settings or {}).get("kind", "none"))
    if kind not in TRACKERS:
        raise ValueError(f"tracking.kind must be one of {sorted(TRACKERS)}, got '{kind}'")
    return kind


def _missing(modules) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def check_tracking(settings: Any) -> None:
    """Refuse, before any work, a tracker that cannot log: its package is not installed
    (one line, the fix), or its store cannot be reached or created (one line, which)."""
    kind = _kind(settings)
    if kind == "none":
        return
    modules, package, extra = TRACKERS[kind]
    if _missing(modules):
        raise MissingTrackerError(
            f"tracking={kind} needs {package}: pip install 'evalharness[{extra}]' "
            "(or tracking=none)"
        )
    from evalharness.tracking.mlflow import check_store, store_uri

    uri = store_uri(settings)
    if uri.startswith("sqlite:") and _missing(SQL_MODULES):
        raise MissingTrackerError(
            f"tracking={kind} with a SQLite store ({uri}) needs {', '.join(_missing(SQL_MODULES))}:"
            f" pip install 'evalharness[{extra}]' (or tracking.uri=http://HOST:PORT)"
        )
    why = check_store(uri, float((settings or {}).get("timeout_s") or 5))
    if why:
        raise UnreachableTrackerError(f"tracking.uri {uri}: {why} (or tracking=none)")


def log_sweep(settings: Any, run_dir: Path, sweep: str | None = None) -> str | None:
    """Log a finished run dir with the configured tracker (the config's `tracking` settings,
    plain data); a line saying where, or None. TrackingError when logging fails."""
    kind = _kind(settings)
    if kind == "none":
        return None
    check_tracking(settings)
    from evalharness.tracking.mlflow import log_run

    try:
        where = log_run(Path(run_dir), settings, sweep)
    except Exception as e:  # the server, the store, MLflow itself: the results stay
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise TrackingError(f"{kind} could not log the sweep: {type(e).__name__}: {first}") from e
    return (
        f"mlflow: run {where.run_id} in experiment '{where.experiment}' at {where.uri} "
        f"({where.children} child runs)"
    )
