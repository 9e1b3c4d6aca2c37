"""Overrides -> Hydra's composed config, as plain data: the only place Hydra composes.

Both ways in end here: the command line's Hydra job hands over its composed DictConfig
(`from_hydra`), everything else (the Python API, tools, benchmarks, tests) composes with
Hydra's compose API (`compose`). Either way the result is a `Composed`: the resolved config
as plain dicts and lists, the option chosen for each config group, and the overrides that
chose them. config/runplan.py turns it into the RunPlan; nothing below sees a DictConfig.

The config search path is the user's config dirs, then the package's configs (first wins):
`--config-dir DIR` and `hydra.searchpath=[file://DIR]` on the command line and
EVALHARNESS_CONFIG_PATH (os.pathsep separated); config/store.py says how Hydra is made to
agree on that order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalharness.config.store import (
    OptionStore,
    check_dirs,
    composing,
    env_config_dirs,
    register_resolvers,
)
from evalharness.paths import CONF_DIR
from evalharness.registry import FACTORS, unknown_choice_message


@dataclass(frozen=True)
class Composed:
    """Hydra's answer to a list of overrides, with nothing of Hydra left in it."""

    config: Mapping[str, Any]  # resolved, without the `hydra` node
    choices: Mapping[str, str]  # config group -> option name (backend -> torch, ...)
    overrides: tuple[str, ...]  # as given: which factors the user chose explicitly
    user_dirs: tuple[str, ...] = ()  # config dirs searched before the package's


def user_dirs(extra: Sequence[str | Path] = ()) -> tuple[str, ...]:
    """The user's config dirs: those given, then EVALHARNESS_CONFIG_PATH's, absolute."""
    dirs = [str(Path(d).expanduser().absolute()) for d in extra]
    dirs += [str(d) for d in env_config_dirs() if str(d) not in dirs]
    return tuple(dirs)


def sweep_factor_overrides(overrides: Sequence[str]) -> list[str]:
    """`sweep.factors.colour=[rgb,bgr]` adds a factor the sweep file does not list: Hydra
    would refuse it as a new key (it wants `+`, or `++` when it may exist). The README's
    spelling is the natural one, so it is given Hydra's `++` (add or replace). Deeper keys
    (`sweep.factors.resize.limit_side_len`) are left for the error that names the fix."""
    out = []
    for arg in overrides:
        key, eq, _ = arg.partition("=")
        if eq and key.startswith("sweep.factors.") and key.count(".") == 2:
            arg = "++" + arg
        out.append(arg)
    return out


def searchpath_dirs(overrides: Sequence[str]) -> list[str]:
    """The folders of a `hydra.searchpath=[file://DIR,pkg://package.conf]` override: user
    config dirs like `--config-dir`'s (a `pkg://` entry is the installed package's folder)."""
    import importlib.util

    out: list[str] = []
    for arg in overrides:
        key, _, value = arg.lstrip("+").partition("=")
        if key != "hydra.searchpath":
            continue
        for entry in value.strip("[]").split(","):
            entry = entry.strip().strip("'\"")
            if entry.startswith("file://"):
                out.append(entry[len("file://") :])
            elif entry.startswith("pkg://"):
                package, _, sub = entry[len("pkg://") :].partition("/")
                spec = importlib.util.find_spec(package.replace("/", "."))
                if spec is not None and spec.submodule_search_locations:
                    base = Path(next(iter(spec.submodule_search_locations)))
                    out.append(str(base / sub))
            elif entry:
                out.append(entry)
    return out


def store_for(dirs: Sequence[str | Path] = ()) -> OptionStore:
    return OptionStore([Path(d) for d in dirs])


def _as_plain(cfg) -> dict[str, Any]:
    """Resolved plain data, without the `hydra` node (its interpolations, such as
    `${hydra.job.num}`, only resolve inside a Hydra job)."""
    from omegaconf import OmegaConf, open_dict

    register_resolvers()
    if "hydra" in cfg:
        cfg = cfg.copy()
        with open_dict(cfg):
            del cfg["hydra"]
    return OmegaConf.to_container(cfg, resolve=True)


def from_hydra(cfg, choices: Mapping[str, Any], overrides: Sequence[str], dirs=()) -> Composed:
    """The Hydra job's config (a DictConfig) as a Composed."""
    picked = {str(k): str(v) for k, v in choices.items() if v is not None}
    return Composed(_as_plain(cfg), picked, tuple(overrides), tuple(dirs))


def compose(overrides: Sequence[str], dirs: Sequence[str | Path] = ()) -> Composed:
    """Compose the app's config for these overrides with Hydra's compose API."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    found = user_dirs([*dirs, *searchpath_dirs(overrides)])
    check_dirs(found)
    GlobalHydra.instance().clear()
    with composing(found), initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        given = sweep_factor_overrides(overrides)
        cfg = hydra_compose("config", overrides=given, return_hydra_config=True)
    choices = dict(cfg.hydra.runtime.choices)
    GlobalHydra.instance().clear()
    return from_hydra(cfg, choices, overrides, found)


def check_group_choices(argv: Sequence[str], store: OptionStore) -> str | None:
    """One readable line for `group=unknown`, before Hydra prints its multi-line error."""
    groups = set(store.groups())
    for arg in argv:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.split("=", 1)
        group = key.lstrip("+~")
        if "." in group or "/" in group or group not in groups:
            continue
        names = store.names(group)
        for v in value.split(","):  # multirun lists: backend=torch,onnxruntime
            if v and v not in names:
                return unknown_choice_message(group, v, names)
    return None


def factor_choices(composed: Composed, groups: Sequence[str] = FACTORS) -> dict[str, str]:
    """The option of every factor group (FACTORS, then the model's task's own groups)."""
    missing = [g for g in groups if g not in composed.choices]
    if missing:
        raise ValueError(f"no option chosen for factor group(s) {', '.join(missing)}")
    return {f: composed.choices[f] for f in groups}
