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


def add_trust_flag(ap) -> None:
    """--trust-edited: read a run dir whose files are not what the run recorded (said)."""
    ap.add_argument(
        "--trust-edited",
        action="store_true",
        help="read a run dir even when its files are not what the run wrote (records.json); "
        "each unverified file is named on stderr",
    )


def write_output(path, text: str, hint: str) -> str:
    """Write an output file (atomically: a link at its name is replaced, never followed) and
    say where; a folder that cannot be written (read-only) is said, not a traceback."""
    from pathlib import Path

    from evalharness.rundir.atomic import write_atomic_text

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic_text(path, text)
    except OSError as e:
        return f"not written: {path} ({e.strerror or e}); {hint} writes it elsewhere"
    return f"written: {path}"


def writable_dir(run_dir, out) -> bool:
    """Whether the command may write its outputs: into --out when given, else into the run
    dir (os.access sees a read-only file system as well as permissions)."""
    import os

    return out is not None or not run_dir.is_dir() or os.access(run_dir, os.W_OK)


def refuse_links(run_dir, names: tuple[str, ...]) -> None:
    """The folders a command writes into inside a run dir must be folders, not links: a link
    (`explain -> /elsewhere`) would send the writes outside the run dir."""
    for name in names:
        if (run_dir / name).is_symlink():
            raise ValueError(
                f"{run_dir / name} is a symbolic link; nothing is written through it (remove "
                "it, or give --out DIR)"
            )
