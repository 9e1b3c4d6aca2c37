"""What a finished run dir recorded about itself: its config, its option names, its settings.

run_config.yaml (the resolved config as it ran), choices.json (the option of every factor)
and factors.json (the factor columns and swept settings) are written when the run is
claimed, so any config of the run -- or one it lacks -- can be planned again later
(on-demand evaluation by explain, findings and report) and the run's task re-created
without its model file. Plain data only: these readers are for every layer above.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalharness.registry import FACTORS

RUN_CONFIG = "run_config.yaml"
CHOICES = "choices.json"
FACTORS_FILE = "factors.json"


def run_config(run_dir: Path) -> dict[str, Any]:
    """run_config.yaml as plain data."""
    import yaml

    return yaml.safe_load((Path(run_dir) / RUN_CONFIG).read_text()) or {}


def run_choices(run_dir: Path) -> dict[str, str]:
    """The factor options the run's base config used (FACTORS, then any factor group of the
    run's task, such as image-to-image's tile: choices.json holds only factor groups)."""
    choices = json.loads((Path(run_dir) / CHOICES).read_text())
    extra = [f for f in choices if f not in FACTORS]
    return {f: str(choices[f]) for f in (*FACTORS, *extra) if f in choices}


def run_settings(run_dir: Path) -> dict[str, str]:
    """Swept settings: column name -> `group.key` (limit_side_len -> resize.limit_side_len)."""
    path = Path(run_dir) / FACTORS_FILE
    return json.loads(path.read_text()).get("settings", {}) if path.exists() else {}


def run_user_dirs(run_dir: Path) -> list[str]:
    """The user config dirs the run searched before the package's (none recorded: [])."""
    path = Path(run_dir) / FACTORS_FILE
    return json.loads(path.read_text()).get("config_dirs", []) if path.exists() else []


def model_settings(run_dir: Path) -> dict[str, Any]:
    """The run's model config (name, task, post-processing, card) as it ran."""
    return dict(run_config(run_dir).get("model") or {})


def dataset_settings(run_dir: Path) -> dict[str, Any]:
    return dict(run_config(run_dir).get("dataset") or {})
