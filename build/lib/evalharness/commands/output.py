"""How the command line shows what the library says (the library itself never prints)."""

from __future__ import annotations

import sys


def setup_logging() -> None:
    """The library's notes and warnings (logger "evalharness") as plain lines on stderr."""
    import logging

    log = logging.getLogger("evalharness")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
