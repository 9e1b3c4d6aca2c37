"""evalharness: same weights, different numbers; find the preprocessing factor to blame.

    import evalharness
    res = evalharness.sweep(["+sweep=preproc_ablation"])   # or Results.load(run_dir)
    res.summary, res.explain(b={"resize": "cv2_linear"}).verdict

Importing the package stays light (no torch, no pandas): `sweep` and `Results` load the
engine when first used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalharness.api import Results

__version__ = "0.1.0"

# The project root holds datasets/ and models/. Relative paths in configs resolve here
# when they do not exist relative to the current directory. The configs ship in the package.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = Path(__file__).resolve().parent / "conf"


def _package_file(package: str, relpath: str) -> str:
    """`${pkgfile:pkg,path}`: a file shipped inside an installed package (e.g. model weights)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"package '{package}' is not installed (see its model config for how)")
    return str(Path(next(iter(spec.submodule_search_locations))) / relpath)


def _register_resolvers() -> None:
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("pkgfile", _package_file, replace=True)


_register_resolvers()


def sweep(overrides: list[str] | dict[str, Any] | str | None = None, run_dir=None) -> Results:
    """Run a config or a sweep in-process (Hydra overrides as a list, a string or a dict) and
    return its `Results`; see evalharness.api."""
    from evalharness.api import sweep as _sweep

    return _sweep(overrides, run_dir)


def __getattr__(name: str):
    # `evalharness.Results` / `evalharness.Explanation` without importing pandas up front.
    if name in ("Results", "Explanation"):
        from evalharness import api

        return getattr(api, name)
    raise AttributeError(f"module 'evalharness' has no attribute '{name}'")
