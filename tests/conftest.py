"""Shared fixtures: a per-session export cache, and in-process runs of the sweep."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evalharness.paths import PROJECT_ROOT

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def export_cache(tmp_path_factory) -> Path:
    """Exports go to a test-session cache, never the user's."""
    path = tmp_path_factory.mktemp("export-cache")
    os.environ["EVALHARNESS_CACHE"] = str(path)
    return path


def compose_config(overrides: list[str]):
    """(config, choices) for these overrides: the composed config as an OmegaConf object
    (tests read it by attribute) and the option of every config group."""
    from omegaconf import OmegaConf

    from evalharness.config.compose import compose

    composed = compose(overrides)
    return OmegaConf.create(dict(composed.config)), dict(composed.choices)


def plan_of(overrides: list[str], cfg_edit=None):
    """The RunPlan of these overrides (progress off), as the sweep builds it; cfg_edit(config)
    may change the composed config (plain dicts) first, e.g. a sweep's exclude list."""
    from dataclasses import replace

    from evalharness.config.compose import compose
    from evalharness.config.runplan import build_plan

    composed = compose(["progress=false", *overrides])
    if cfg_edit is not None:
        config = dict(composed.config)
        cfg_edit(config)
        composed = replace(composed, config=config)
    return build_plan(composed)


def run_in_process(overrides: list[str], out: Path, cfg_edit=None):
    """Run a config or sweep in-process (as `evalharness` would); returns (summary, out)."""
    from evalharness.runner.run import execute

    return execute(plan_of(overrides, cfg_edit), out).summary, out


@pytest.fixture
def run_app(tmp_path):
    """run_in_process into tmp_path/run unless a run dir is given."""

    def _run(overrides: list[str], run_dir: Path | None = None):
        return run_in_process(overrides, run_dir or tmp_path / "run")

    return _run


@pytest.fixture
def library_log(caplog, monkeypatch):
    """caplog for the library's logger ("evalharness", INFO and up), even after a command in
    this process set it up to print on stderr (which stops it propagating)."""
    import logging

    monkeypatch.setattr(logging.getLogger("evalharness"), "propagate", True)
    with caplog.at_level("INFO", logger="evalharness"):
        yield caplog
