"""evalharness: same weights, different numbers; find the preprocessing factor to blame."""

from pathlib import Path

__version__ = "0.1.0"

# The project root holds conf/, datasets/ and models/. Relative paths in configs resolve here
# when they do not exist relative to the current directory.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"


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
