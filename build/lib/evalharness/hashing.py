"""SHA-256 of files: what identifies a model, a dataset image, a derived model, a part file.

A leaf (hashlib only), so every layer identifies content the same way.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (never memoized: for verification)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=256)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (memoized per path, size and mtime within a process)."""
    st = os.stat(path)
    return _sha256_of(str(path), st.st_size, st.st_mtime_ns)
