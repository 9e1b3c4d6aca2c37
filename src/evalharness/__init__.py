"""evalharness: same weights, different numbers; find the preprocessing factor to blame."""

from pathlib import Path

__version__ = "0.1.0"

# The project root holds conf/, datasets/ and models/. Relative paths in configs resolve here
# when they do not exist relative to the current directory.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"
