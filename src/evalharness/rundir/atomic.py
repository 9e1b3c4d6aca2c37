"""Files written whole or not at all: a temp file beside the target, renamed over it.

A reader sees the old file or the new one, never half of one, and a link at the target is
replaced, never followed (a run dir or report folder someone pointed elsewhere is not
written through). The temp name `.NAME.XXXX.tmp` is what store.stale_temp_files removes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a writer, not a reader of frames: `--help` must not load pandas
    import pandas as pd


def temp_beside(path: Path) -> tuple[int, str]:
    """A new temp file beside `path` (O_EXCL, mode 0600: never an existing file or a link);
    its name `.NAME.XXXX.tmp` is what stale_temp_files recognises."""
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)


def write_atomic_bytes(path: Path, data: bytes, fsync: bool = False) -> None:
    """Write to a fresh temp file and rename it over `path`: a reader sees the old file or the
    new one, and a link at `path` is replaced, never followed."""
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomic_text(path: Path, text: str) -> None:
    write_atomic_bytes(Path(path), text.encode())


def write_atomic_csv(path: Path, df: pd.DataFrame) -> None:
    write_atomic_text(path, df.to_csv(index=False))
