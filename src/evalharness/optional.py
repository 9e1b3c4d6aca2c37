"""Optional dependencies: import one, or fail with the one line that says how to install it.

A leaf, so a runtime, a metric (pycocotools) or a tracker can each say the same thing.
"""

from __future__ import annotations

import importlib
import re
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


# Where a runtime's message says where it was raised, not why: OpenVINO opens with
# "Exception from src/inference/src/cpp/core.cpp:84:" and "Check '...' failed at ...:117:"
# lines before the cause, so the first line alone loses it.
_LOCATION = re.compile(r"^(Exception from \S+:\d+:?|Check '.*' failed at \S+:\d+:?)$")


def error_line(exc: BaseException | str, limit: int = 300) -> str:
    """A library's (possibly multi-line) message as one line that keeps its cause: location
    lines are dropped, the rest joined; cut at `limit` characters."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__ if isinstance(exc, BaseException) else ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    kept = [ln for ln in lines if not _LOCATION.match(ln)] or lines
    line = " ".join(kept)
    return line if len(line) <= limit else line[: limit - 3] + "..."
