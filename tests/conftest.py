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


@pytest.fixture
def run_app(tmp_path):
    """Run the app in-process on the given overrides; returns (summary, run_dir)."""
    from evalharness.app import run
    from evalharness.sweep.plan import explicit_factors

    def _run(overrides: list[str], run_dir: Path | None = None):
        cfg, choices = compose_config(["progress=false", *overrides])
        out = run_dir or tmp_path / "run"
        return run(cfg, out, choices, explicit=explicit_factors(overrides)), out

    return _run
