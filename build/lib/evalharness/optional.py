"""Optional dependencies: import one, or fail with the one line that says how to install it.

A leaf, so a runtime, a metric (pycocotools) or a tracker can each say the same thing.
"""

from __future__ import annotations

import importlib
from typing import Any


class MissingRuntimeError(ValueError):
    """An optional runtime (or library) a config needs is not installed: one line, the fix."""


def require(module: str, what: str, extra: str) -> Any:
    """Import an optional dependency or fail with the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingRuntimeError(
            f"{what} needs the Python package '{module}' ({type(e).__name__}: {e}); "
            f"install it with: pip install 'evalharness[{extra}]'"
        ) from None
