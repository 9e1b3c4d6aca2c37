"""A finished run dir as something to re-create configs from: its config, choices, specs.

run_config.yaml, choices.json and factors.json (written by the app) hold the resolved config,
the option names and the swept settings, so any config of the run -- or one it lacks -- can
be rebuilt later (on-demand evaluation by explain and report).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from evalharness.analysis.results import RunResults
from evalharness.data.dataset import Dataset, load_dataset
from evalharness.engine.plan import FACTORS, RunSpec, canonical_settings, expand
from evalharness.models.source import ModelSpec


def run_choices(run_dir: Path) -> dict[str, str]:
    """The factor options the run's base config used."""
    choices = json.loads((run_dir / "choices.json").read_text())
    return {f: str(choices[f]) for f in FACTORS if f in choices}


def run_settings(run_dir: Path) -> dict[str, str]:
    """Swept settings: column name -> `group.key` (limit_side_len -> resize.limit_side_len)."""
    path = run_dir / "factors.json"
    return json.loads(path.read_text()).get("settings", {}) if path.exists() else {}


def canonical(run_dir: Path, config: dict[str, str]) -> dict[str, str]:
    """The config as the run's rows spell it (settings an option lacks read "-")."""
    return canonical_settings(config, run_settings(run_dir), run_config(run_dir).model.card)


def run_config(run_dir: Path) -> DictConfig:
    return OmegaConf.load(run_dir / "run_config.yaml")


def run_dataset(run_dir: Path) -> Dataset | None:
    """The run's dataset as its config names it, or None when it cannot be read here."""
    try:
        return load_dataset(run_config(run_dir).dataset)
    except (OSError, ValueError):
        return None


def reference_config(run_dir: Path, res: RunResults) -> dict[str, str]:
    """The model card's reference config: the row the plan marked (always evaluated).

    A run dir from before the reference was always planned falls back to the card's
    reference, a factor the run held at one value keeping that value.
    """
    ref_id = res.reference_id()
    if ref_id is not None:
        return res.factors_of(ref_id)
    cfg = run_config(run_dir)
    ref = dict(run_choices(run_dir))
    ref.update({k: str(v) for k, v in (cfg.model.card.get("reference") or {}).items()})
    for f in res.factors:
        values = res.summary[f].unique()
        if len(values) == 1 or f not in ref:
            ref[f] = str(values[0])
    return {f: ref[f] for f in res.factors}


def evaluate_on_demand(run_dir: Path, configs: list[dict[str, str]]) -> RunResults | None:
    """Run the configs the sweep lacks, with the run's own dataset and model."""
    if not configs:
        return None
    from evalharness.app import run

    choices = run_choices(run_dir)
    out = None
    unique = {json.dumps(c, sort_keys=True): c for c in (canonical(run_dir, c) for c in configs)}
    for config in unique.values():
        cfg = single_config_cfg(run_dir, config)
        tag = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
        sub = run_dir / "explain" / "ondemand" / tag
        print(f"evaluating missing config on demand: {config}", file=sys.stderr)
        run(cfg, sub, choices, quiet=True, explicit=set(FACTORS))
        res = RunResults.load(sub)
        found = res.find(config)
        res = RunResults(
            res.summary[res.summary.config_id == found].reset_index(drop=True),
            res.task,
            {found: res.records[found]},
            res.sample_ids,
            res.labels,
        )
        out = res if out is None else out.merged(res)
    return out


def single_config_cfg(run_dir: Path, config: dict[str, str]) -> DictConfig:
    """The run's config narrowed to one factor assignment (a one-config sweep)."""
    cfg = run_config(run_dir)
    OmegaConf.set_struct(cfg, False)
    settings = run_settings(run_dir)
    factors = {settings.get(f, f): [v] for f, v in config.items()}
    cfg.sweep = {"factors": factors, "exclude": []}
    cfg.progress = False
    cfg.shard = {"index": 0, "count": 1}
    return cfg


def spec_for(run_dir: Path, config: dict[str, str]) -> RunSpec:
    """The RunSpec (pipeline + variant) of one config of the run."""
    cfg = single_config_cfg(run_dir, config)
    specs = expand(cfg, run_choices(run_dir), ModelSpec.from_config(cfg.model))
    return next(s for s in specs if all(s.factor_dict.get(f) == v for f, v in config.items()))
