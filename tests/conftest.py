"""Shared fixtures: a per-session export cache, and in-process runs of the Hydra app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from evalharness import CONF_DIR, PROJECT_ROOT

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def export_cache(tmp_path_factory) -> Path:
    """Exports go to a test-session cache, never the user's."""
    path = tmp_path_factory.mktemp("export-cache")
    os.environ["EVALHARNESS_CACHE"] = str(path)
    return path


def compose_config(overrides: list[str]):
    """The app's config as Hydra composes it, plus the chosen option per factor."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, choices


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
