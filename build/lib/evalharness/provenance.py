"""The versions that decide the pixels and the numbers, for every results row.

A leaf: the core (this package, Python, NumPy, the CPU) is known here; every other library
is reported by whoever registered it (each backend, decoder and resizer has `versions()`),
collected by engine/versions.py. Keys become the `v_<key>` columns of summary.csv.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable

from evalharness._version import __version__


def core_versions() -> dict[str, str]:
    import numpy as np

    return {
        "evalharness": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def collect(providers: Iterable[Callable[[], dict[str, str]]]) -> dict[str, str]:
    """Core versions, then each provider's (first one wins a key), the CPU last."""
    out = core_versions()
    for versions in providers:
        for key, value in versions().items():
            out.setdefault(key, value)
    out["cpu"] = platform.processor() or platform.machine()
    return out
