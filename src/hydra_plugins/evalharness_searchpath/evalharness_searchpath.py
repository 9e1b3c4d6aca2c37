"""Hydra search-path plugin: the user's config dirs before evalharness's own configs.

Hydra adds `--config-dir` and `hydra.searchpath` after the app's config dir, so a user's
`sweep/preproc_ablation.yaml` would be hidden by the shipped one while evalharness's own
option lookup (evalharness.config.store) finds the user's first. This plugin, found by
Hydra in the `hydra_plugins` namespace, prepends the user dirs (`search_dirs()`) to the
primary config dir of every composition, so Hydra and the plan read the same file. It
changes nothing for other Hydra apps: the dirs come from EVALHARNESS_CONFIG_PATH or a
composition evalharness runs, and it only anchors on an app whose configs are evalharness's.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin


class EvalharnessSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from evalharness.config.store import search_dirs
        from evalharness.paths import CONF_DIR

        main = [e.path for e in search_path.get_path() if e.provider == "main"]
        if not main or Path(main[0].removeprefix("file://")) != CONF_DIR:
            return  # another app's configs: not ours to change
        for d in search_dirs():  # first wins: each goes in just before the package's configs
            search_path.prepend(
                "evalharness-user", f"file://{d}", anchor=SearchPathQuery(provider="main")
            )
