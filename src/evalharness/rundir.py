"""A finished run dir as something to re-create configs from: its config, choices, specs.

run_config.yaml and choices.json (written by the app) hold the resolved config and the
option names, so any config of the run -- or one it lacks -- can be rebuilt later.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from evalharness.analysis.results import RunResults
from evalharness.data.dataset import Dataset, load_dataset
from evalharness.models.source import ModelSpec
from evalharness.engine.plan import FACTORS, RunSpec, expand


def run_choices(run_dir: Path) -> dict[str, str]:
    """The factor options the run's base config used."""
    choices = json.loads((run_dir / "choices.json").read_text())
    return {f: str(choices[f]) for f in FACTORS}


def run_config(run_dir: Path) -> DictConfig:
    return OmegaConf.load(run_dir / "run_config.yaml")


def run_dataset(run_dir: Path) -> Dataset | None:
    """The run's dataset as its config names it, or None when it cannot be read here."""
    try:
        return load_dataset(run_config(run_dir).dataset)
    except (OSError, ValueError):
        return None


def reference_config(run_dir: Path, res: RunResults) -> dict[str, str]:
    """The model card's reference pipeline; factors it does not name keep the base choice.

    A factor the run held at one value (e.g. a sweep on onnxruntime only) keeps that value:
    the reference is then a config the run has, not one to evaluate again on demand.
    """
    cfg = run_config(run_dir)
    ref = dict(run_choices(run_dir))
    ref.update({k: str(v) for k, v in (cfg.model.card.get("reference") or {}).items()})
    for f in res.factors:
        values = res.summary[f].unique()
        if len(values) == 1:
            ref[f] = str(values[0])
    return {f: ref[f] for f in res.factors}


def evaluate_on_demand(run_dir: Path, configs: list[dict[str, str]]) -> RunResults | None:
    """Run the configs the sweep lacks, with the run's own dataset and model."""
    if not configs:
        return None
    from evalharness.app import run

    choices = run_choices(run_dir)
    out = None
    for config in configs:
        cfg = single_config_cfg(run_dir, config)
        tag = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
        sub = run_dir / "explain" / "ondemand" / tag
        print(f"evaluating missing config on demand: {config}", file=sys.stderr)
        run(cfg, sub, choices, quiet=True, explicit=set(FACTORS))
        res = RunResults.load(sub)
        out = res if out is None else out.merged(res)
    return out


def single_config_cfg(run_dir: Path, config: dict[str, str]) -> DictConfig:
    """The run's config narrowed to one factor assignment (a one-config sweep)."""
    cfg = run_config(run_dir)
    OmegaConf.set_struct(cfg, False)
    cfg.sweep = {"factors": {f: [v] for f, v in config.items()}, "exclude": []}
    cfg.progress = False
    cfg.shard = {"index": 0, "count": 1}
    return cfg


def spec_for(run_dir: Path, config: dict[str, str]) -> RunSpec:
    """The RunSpec (pipeline + variant) of one config of the run."""
    cfg = single_config_cfg(run_dir, config)
    return expand(cfg, run_choices(run_dir), ModelSpec.from_config(cfg.model))[0]
