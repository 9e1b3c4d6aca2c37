"""Where things are: the package's configs, the project's demo files, the cache.

A leaf: imports nothing of the package, so every layer may ask it.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The Hydra configs ship inside the package (a wheel carries them).
CONF_DIR = PACKAGE_DIR / "conf"
# A source checkout's root (datasets/, models/): relative paths in configs resolve here when
# they do not exist relative to the current directory.
PROJECT_ROOT = PACKAGE_DIR.parents[1]
CACHE_ENV = "EVALHARNESS_CACHE"
DEFAULT_CACHE = "~/.cache/evalharness"
HOME_ENV = "EVALHARNESS_HOME"  # what the tool keeps for the user: the MLflow store


IS_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").is_file()  # a source checkout, not a wheel


def resolve_path(p: str | Path) -> Path:
    """A config path: absolute, or relative to the cwd, or else to a source checkout's root
    (an installed package has none: a missing path is then named relative to the cwd)."""
    p = Path(str(p)).expanduser()
    if p.is_absolute() or p.exists():
        return p
    if IS_CHECKOUT and (PROJECT_ROOT / p).exists():
        return PROJECT_ROOT / p
    return p.absolute()


def cache_dir() -> Path:
    """The derived-model cache ($EVALHARNESS_CACHE, else ~/.cache/evalharness)."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def data_dir() -> Path:
    """Where the tool keeps the user's records across runs (the default MLflow store):
    $EVALHARNESS_HOME, else $XDG_DATA_HOME/evalharness, else ~/.local/share/evalharness.
    Never the working directory: a sweep run from another folder finds the same store."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path("~/.local/share").expanduser()) / "evalharness"


def package_file(package: str, relpath: str) -> str:
    """`${pkgfile:pkg,path}`: a file shipped inside an installed package (model weights)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"package '{package}' is not installed (see its model config for how)")
    return str(Path(next(iter(spec.submodule_search_locations))) / relpath)
