"""Shared fixtures: a per-session export cache, and in-process runs of the Hydra app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evalharness import PROJECT_ROOT
from evalharness.compose import compose_config

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def export_cache(tmp_path_factory) -> Path:
    """Exports go to a test-session cache, never the user's."""
    path = tmp_path_factory.mktemp("export-cache")
    os.environ["EVALHARNESS_CACHE"] = str(path)
    return path


def run_in_process(overrides: list[str], out: Path, cfg_edit=None):
    """Run the app in-process (as `python -m evalharness` would); returns (summary, out).

    cfg_edit(cfg) may change the composed config first (e.g. a sweep's exclude list).
    """
    from evalharness.app import run
    from evalharness.engine.plan import explicit_factors

    cfg, choices = compose_config(["progress=false", *overrides])
    if cfg_edit is not None:
        cfg_edit(cfg)
    return run(cfg, out, choices, quiet=True, explicit=explicit_factors(overrides)), out


@pytest.fixture
def run_app(tmp_path):
    """run_in_process into tmp_path/run unless a run dir is given."""

    def _run(overrides: list[str], run_dir: Path | None = None):
        return run_in_process(overrides, run_dir or tmp_path / "run")

    return _run
