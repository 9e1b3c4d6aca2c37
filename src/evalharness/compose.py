"""Config -> run specs outside a Hydra job (tools, benchmarks): the app's resolution, reused."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from evalharness import CONF_DIR
from evalharness.data.dataset import Dataset, load_dataset
from evalharness.engine.plan import FACTORS, RunSpec, apply_model_card, expand, explicit_factors
from evalharness.models.source import ModelSpec


def compose_config(overrides: list[str]) -> tuple[DictConfig, dict[str, str]]:
    """The app's config for these overrides, and the option chosen for each factor.

    The model card is not applied here: `app.run` applies it (once) from the explicit set.
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    choices = {f: str(cfg.hydra.runtime.choices[f]) for f in FACTORS}
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, choices


def resolve(overrides: list[str]) -> tuple[DictConfig, list[RunSpec], Dataset]:
    """Config, run specs and dataset for these overrides, model card applied as the app does."""
    cfg, choices = compose_config(overrides)
    choices = apply_model_card(cfg, choices, explicit_factors(overrides))
    model = ModelSpec.from_config(cfg.model)
    return cfg, expand(cfg, choices, model), load_dataset(cfg.dataset)


def prepare_run(overrides: list[str]):
    """(cfg, specs, dataset, task) for these overrides: everything `app.run` checks first."""
    from evalharness.app import prepare

    cfg, choices = compose_config(overrides)
    _, _, dataset, task, specs, _ = prepare(cfg, choices, explicit_factors(overrides))
    return cfg, specs, dataset, task
