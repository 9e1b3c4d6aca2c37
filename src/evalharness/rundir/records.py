"""records.json: the sha256 of every file a run wrote, and the mark that a dir is a run dir.

One file, one mechanism (DESIGN.md, round 3): the claim writes it first (so a dir is ours
only when it holds a records.json of this format, never because some file in it is called
plan.json or configs.csv), then every file the run writes -- plan files, each part, the
tables, variants.json, stats.json -- is entered with its sha256 and size after it was
renamed into place. Merge's per-part checks, the resume's "is this part done", and every
reader (Results, findings, explain, compare, report) verify against the same entries.

Only the process holding the run dir's lock writes it, always by write-to-temp + rename, so
a kill leaves the previous complete version. A file written but not yet entered (a kill
between the rename and the entry) counts as not written: a part is computed again.

Readers refuse a file whose bytes are not the recorded ones (`EditedRunError`, one line
naming the file) unless they run inside `trusting_edits(True)` (`--trust-edited`), which
reads it anyway and logs what was not verified.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from evalharness.hashing import sha256_file
from evalharness.rundir.atomic import write_atomic_bytes

RECORDS = "records.json"
FORMAT = "evalharness run dir"
VERSION = 1
TRUST_FLAG = "--trust-edited"

log = logging.getLogger("evalharness")
_TRUST: ContextVar[bool] = ContextVar("evalharness_trust_edited", default=False)


class EditedRunError(ValueError):
    """A run-dir file is not what the run wrote (edited, truncated, replaced, or unrecorded)."""


@contextmanager
def trusting_edits(trust: bool = True) -> Iterator[None]:
    """Within this block, readers log an unverified file instead of refusing it."""
    token = _TRUST.set(bool(trust))
    try:
        yield
    finally:
        _TRUST.reset(token)


def is_regular(path: Path) -> bool:
    """A regular file itself, not a link to one (lstat): what a run dir's files must be."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def read(run_dir: Path) -> dict[str, Any] | None:
    """records.json as data, or None when the dir holds no records.json of ours."""
    path = Path(run_dir) / RECORDS
    if not is_regular(path):
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    if not isinstance(data.get("files"), dict):
        return None
    return data


def is_run_dir(run_dir: Path) -> bool:
    """Whether the dir was made by evalharness: it holds our records.json (a marker a user's
    own files cannot be mistaken for)."""
    return read(run_dir) is not None


def entries(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Relative path -> {sha256, size, ...} of every file the run recorded ({} for none)."""
    data = read(run_dir)
    return dict(data["files"]) if data else {}


def _write(run_dir: Path, files: dict[str, dict[str, Any]]) -> None:
    body = {"format": FORMAT, "version": VERSION, "files": dict(sorted(files.items()))}
    write_atomic_bytes(Path(run_dir) / RECORDS, json.dumps(body, indent=1).encode(), fsync=True)


def start(run_dir: Path) -> None:
    """Mark a fresh dir as ours (an empty records.json); the claim's first write."""
    _write(run_dir, {})


def entry_of_bytes(data: bytes, **extra: Any) -> dict[str, Any]:
    return dict(sha256=hashlib.sha256(data).hexdigest(), size=len(data), **extra)


def entry_of_file(path: Path, **extra: Any) -> dict[str, Any]:
    return dict(sha256=sha256_file(path), size=os.lstat(path).st_size, **extra)


def add(run_dir: Path, new: dict[str, dict[str, Any]]) -> None:
    """Enter files (relative path -> entry) into records.json. Caller holds the lock."""
    files = entries(run_dir)
    files.update(new)
    _write(run_dir, files)


def drop(run_dir: Path, names: Iterable[str]) -> None:
    files = entries(run_dir)
    for name in names:
        files.pop(name, None)
    _write(run_dir, files)


def mismatch(run_dir: Path, name: str, entry: dict[str, Any] | None) -> str | None:
    """Why `name` is not the file the run recorded, or None when it is."""
    path = Path(run_dir) / name
    if entry is None:
        return f"{path} is not in {RECORDS}: the run did not write it"
    if not is_regular(path):
        return f"{path} is missing or not a regular file (the run wrote one)"
    if os.lstat(path).st_size != entry.get("size") or sha256_file(path) != entry.get("sha256"):
        return f"{path} was changed after the run wrote it (its sha256 is not the recorded one)"
    return None


def verify(run_dir: Path, names: Iterable[str], optional: Iterable[str] = ()) -> list[str]:
    """Check that each file is what the run wrote; `optional` names are checked only when
    present. Refuses (EditedRunError, one line) or, when trusting edits, logs and returns
    the problems."""
    run_dir = Path(run_dir)
    data = read(run_dir)
    if data is None:
        problems = [
            f"{run_dir} has no {RECORDS} (not an evalharness run dir, or written by a version "
            "before files were recorded): its results cannot be verified"
        ]
    else:
        files = data["files"]
        wanted = list(names) + [n for n in optional if (run_dir / n).exists() or n in files]
        problems = [p for n in wanted if (p := mismatch(run_dir, n, files.get(n)))]
    if problems and not _TRUST.get():
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise EditedRunError(f"{problems[0]}{more}; {TRUST_FLAG} reads it anyway")
    for p in problems:
        log.warning("not verified (%s): %s", TRUST_FLAG, p)
    return problems


def verify_bytes(run_dir: Path, name: str, data: bytes) -> str | None:
    """Why bytes already read from `name` are not the recorded ones (None when they are):
    reading once serves both the check and the parse."""
    entry = entries(run_dir).get(name)
    if entry is None:
        return f"{Path(run_dir) / name} is not in {RECORDS}: the run did not write it"
    if len(data) != entry.get("size") or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        return f"{Path(run_dir) / name} was changed after the run wrote it"
    return None
