"""The option files of every config group, found on the config search path, read once.

A sweep names options Hydra did not compose (`sweep.factors.resize: [pil_bilinear,
cv2_linear]`): the plan needs their contents too. They are looked up on the same search path
Hydra composes from -- the user's config dirs first (`--config-dir`, `hydra.searchpath`,
EVALHARNESS_CONFIG_PATH), then the configs shipped in the package -- and parsed once per
file version, as plain data. This is the one place below Hydra that reads option YAML; the
plan holds what it read.

Hydra itself puts `--config-dir` and `hydra.searchpath` *after* the app's own configs, so a
user file named like a shipped one would lose in Hydra and win here. The search-path plugin
(`hydra_plugins/evalharness_searchpath`) puts the user dirs of `search_dirs()` before the
package's for every composition, so both agree: the user's file wins, and says so.
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


_COMPOSING: list[tuple[Path, ...]] = []  # the dirs of a compose() in progress (innermost last)


def search_dirs() -> list[Path]:
    """The user config dirs the Hydra search-path plugin puts before the package's configs:
    those of a `composing(...)` block, else EVALHARNESS_CONFIG_PATH's (the sweep command
    sets it from `--config-dir`, so launcher subprocesses inherit it)."""
    return list(_COMPOSING[-1]) if _COMPOSING else env_config_dirs()


class composing:
    """`with composing(dirs):` Hydra compositions inside search these user dirs first."""

    def __init__(self, dirs: Sequence[str | Path]) -> None:
        self.dirs = tuple(Path(d) for d in dirs)

    def __enter__(self) -> None:
        _COMPOSING.append(self.dirs)

    def __exit__(self, *exc: object) -> None:
        _COMPOSING.pop()


def check_dirs(dirs: Sequence[str | Path]) -> None:
    """A config dir that is not there is the user's typo: say which, before Hydra starts."""
    for d in dirs:
        if not Path(d).is_dir():
            raise FileNotFoundError(
                f"config dir not found: {d} (from --config-dir, "
                f"hydra.searchpath or {CONFIG_PATH_ENV})"
            )


def register_resolvers() -> None:
    """`${pkgfile:package,path}` in configs: a file shipped inside an installed package;
    `${demo_data:NAME}`: a demo dataset, the checkout's or made in the cache on first use."""
    from omegaconf import OmegaConf

    from evalharness.demo.firstuse import demo_root
    from evalharness.paths import package_file

    if not OmegaConf.has_resolver("pkgfile"):
        OmegaConf.register_new_resolver("pkgfile", package_file)
    if not OmegaConf.has_resolver("demo_data"):
        OmegaConf.register_new_resolver("demo_data", demo_root)


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

    def user_names(self, group: str) -> list[str]:
        """The options of a group that come from a user dir (listed apart in --help)."""
        return [n for n in self.names(group) if self.path(group, n).parent.parent != CONF_DIR]

    def clashes(self) -> list[str]:
        """One line per option defined in more than one dir: which file wins (the first on
        the search path, as Hydra composes it) and which it hides."""
        out = []
        for group in self.groups():
            for name in self.names(group):
                where = [d / group / f"{name}.yaml" for d in self.dirs]
                where = [p for p in where if p.is_file()]
                if len(where) > 1:
                    hidden = ", ".join(map(str, where[1:]))
                    out.append(f"config {group}={name}: {where[0]} wins over {hidden}")
        return out
