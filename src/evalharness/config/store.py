"""The option files of every config group, found on the config search path, read once.

A sweep names options Hydra did not compose (`sweep.factors.resize: [pil_bilinear,
cv2_linear]`): the plan needs their contents too. They are looked up on the same search path
Hydra composes from -- the user's config dirs first (`--config-dir`, EVALHARNESS_CONFIG_PATH),
then the configs shipped in the package -- and parsed once per file version, as plain data.
This is the one place below Hydra that reads option YAML; the plan holds what it read.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalharness.paths import CONF_DIR
from evalharness.registry import UnknownNameError, unknown_choice_message

CONFIG_PATH_ENV = "EVALHARNESS_CONFIG_PATH"  # user config dirs, os.pathsep separated


def env_config_dirs() -> list[Path]:
    """The config dirs named by EVALHARNESS_CONFIG_PATH (first wins), each made absolute."""
    text = os.environ.get(CONFIG_PATH_ENV, "")
    return [Path(p).expanduser().absolute() for p in text.split(os.pathsep) if p.strip()]


def register_resolvers() -> None:
    """`${pkgfile:package,path}` in configs: a file shipped inside an installed package."""
    from omegaconf import OmegaConf

    from evalharness.paths import package_file

    if not OmegaConf.has_resolver("pkgfile"):
        OmegaConf.register_new_resolver("pkgfile", package_file)


@functools.lru_cache(maxsize=1024)
def _parse(path: str, mtime_ns: int) -> dict[str, Any]:
    """One option file as plain data, interpolations resolved as Hydra would resolve them."""
    from omegaconf import OmegaConf

    register_resolvers()
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: an option file must hold a mapping")
    return data


class OptionStore:
    """Option files by (group, name), searched in `dirs` order (user dirs, then the package)."""

    def __init__(self, user_dirs: Sequence[Path] = ()) -> None:
        self.user_dirs = tuple(Path(d).absolute() for d in user_dirs)
        self.dirs = (*self.user_dirs, CONF_DIR)

    def path(self, group: str, name: str) -> Path | None:
        for d in self.dirs:
            p = d / group / f"{name}.yaml"
            if p.is_file():
                return p
        return None

    def names(self, group: str) -> list[str]:
        found: set[str] = set()
        for d in self.dirs:
            if (d / group).is_dir():
                found.update(p.stem for p in (d / group).glob("*.yaml"))
        return sorted(found)

    def groups(self) -> list[str]:
        found: set[str] = set()
        for d in self.dirs:
            if d.is_dir():
                found.update(p.name for p in d.iterdir() if p.is_dir() and p.name != "hydra")
        return sorted(found)

    def has(self, group: str, name: str) -> bool:
        return self.path(group, name) is not None

    def load(self, group: str, name: str) -> dict[str, Any]:
        """The option's contents (a private copy: callers may change it)."""
        path = self.path(group, str(name))
        if path is None:
            raise UnknownNameError(unknown_choice_message(group, str(name), self.names(group)))
        return copy.deepcopy(_parse(str(path), path.stat().st_mtime_ns))

    def clashes(self) -> list[str]:
        """'group/name: DIR wins over DIR' for options a user dir redefines."""
        out = []
        for group in self.groups():
            for name in self.names(group):
                where = [d for d in self.dirs if (d / group / f"{name}.yaml").is_file()]
                if len(where) > 1:
                    out.append(f"{group}/{name}: {where[0]} wins over {where[1]}")
        return out
