"""The cache of derived models: exports, normalized graphs, fp16/int8 copies, conversions.

A derived model is named by the hash of everything it was made from (the content hash of
every source file, the settings, the library versions that made it), lives under
`<cache_dir>/<kind>/`, and is never written beside a user's file.

The name says what a file was made from, not that the file still is what was made: an edited
export (a bias + 5.0, still a valid ONNX) would keep its name and change every number. So the
sidecar record beside each derived model (`NAME.json`, or `derived.json` inside a model
folder) holds the sha256 of every file built, and every use re-hashes the model against it:
a mismatch is one line naming the file and saying that deleting it rebuilds it. An entry with
no sha256 recorded (made before this check, or a kill between the rename and the record) is
built again.

Builds run in a private temp folder (`.build-XXXX/`, held by a flock while it lives), so
whatever a builder writes beside its output (onnxruntime's `.pre.onnx` and `-inferred.onnx`)
goes with it: the folder is removed in a `finally`, and one a killed process left is removed
by the next build (its flock is free). The result is published under a lock on the kind
folder (exclusive to publish, shared to verify), so a reader never sees a model with another
build's record; two processes racing both build and the first to publish wins.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evalharness.hashing import sha256_file

log = logging.getLogger("evalharness")
BUILD_PREFIX = ".build-"
HELD = ".held"  # the flock a living build holds on its temp folder
DIR_RECORD = "derived.json"


class CacheMismatchError(ValueError):
    """A cached derived model is not the file that was built (edited or damaged)."""


def derived_key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[
        :20
    ]


def cache_root(cache_dir: str | Path) -> Path:
    root = Path(cache_dir).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"cannot create the model cache {root} ({e.strerror}); set cache_dir= or "
            "EVALHARNESS_CACHE to a writable folder"
        ) from None
    if not os.access(root, os.W_OK):
        raise ValueError(
            f"the model cache {root} is not writable; set cache_dir= or EVALHARNESS_CACHE"
        )
    return root


@contextmanager
def _folder_lock(folder: Path, exclusive: bool) -> Iterator[None]:
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


@contextmanager
def build_folder(folder: Path) -> Iterator[Path]:
    """A private temp folder for one build, removed whatever happens in it."""
    remove_dead_builds(folder)
    tmp = Path(tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=folder))
    fd = os.open(tmp / HELD, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(fd)


def remove_dead_builds(folder: Path) -> int:
    """Remove the temp folders of builds whose process died (their flock is free)."""
    removed = 0
    for d in folder.glob(f"{BUILD_PREFIX}*"):
        if d.is_symlink() or not d.is_dir():
            continue
        try:
            fd = os.open(d / HELD, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:  # no flock file: killed before it existed, or not ours to judge
            if time.time() - d.stat().st_mtime < 3600:
                continue
            fd = None
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a living build
        finally:
            if fd is not None:
                os.close(fd)
        shutil.rmtree(d, ignore_errors=True)
        removed += 1
    return removed


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in (DIR_RECORD, HELD)
    }


def check_file(path: Path, record: Path) -> str:
    """'ok', 'absent', 'unrecorded', or why the cached file is not the built one."""
    if not path.exists():
        return "absent"
    data = _read_record(record)
    want = (data or {}).get("sha256")
    if not want:
        return "unrecorded"
    if path.is_symlink() or sha256_file(path) != want:
        return f"{path} is not the model that was built (its sha256 is not the one in {record})"
    return "ok"


def check_dir(path: Path) -> str:
    """check_file for a model made of several files (each one's sha256 in derived.json)."""
    if not path.is_dir():
        return "absent"
    want = (_read_record(path / DIR_RECORD) or {}).get("files")
    if not want:
        return "unrecorded"
    if path.is_symlink() or _hashes(path) != want:
        return (
            f"{path} does not hold the files that were built (a sha256 differs from "
            f"{path / DIR_RECORD}, or a file was added or removed)"
        )
    return "ok"


def _refuse(problem: str) -> CacheMismatchError:
    return CacheMismatchError(f"{problem}; delete it and it is built again")


def _fsync(path: Path) -> None:
    """Flush a built file before it is published: a full disk shows here, not later as a
    truncated model that still carries a record."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def derived_file(
    cache_dir: str | Path,
    kind: str,
    payload: dict[str, Any],
    suffix: str,
    build: Callable[[Path], None],
    stem: str = "",
) -> Path:
    """The cached file for `payload`, built by `build(tmp_path)` when it does not exist yet;
    verified against its recorded sha256 on every use."""
    folder = cache_root(cache_dir) / kind
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{stem}-{derived_key(payload)}" if stem else derived_key(payload)
    path = folder / f"{name}{suffix}"
    record = path.with_name(path.name + ".json")
    with _folder_lock(folder, exclusive=False):
        state = check_file(path, record)
    if state == "ok":
        return path
    if state not in ("absent", "unrecorded"):
        raise _refuse(state)
    if state == "unrecorded":
        log.info("rebuilding %s: no sha256 recorded for it", path.name)
    with build_folder(folder) as tmp_dir:
        tmp = tmp_dir / path.name
        build(tmp)
        check_built(tmp)
        digest = sha256_file(tmp)
        with _folder_lock(folder, exclusive=True):
            if check_file(path, record) != "ok":  # else another process published first
                os.replace(tmp, path)
                _write_record(record, payload, sha256=digest)
    return path


def derived_dir(
    cache_dir: str | Path,
    kind: str,
    payload: dict[str, Any],
    build: Callable[[Path], None],
    stem: str = "",
) -> Path:
    """Like derived_file for a model made of several files (ncnn param+bin, IR xml+bin)."""
    folder = cache_root(cache_dir) / kind
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{stem}-{derived_key(payload)}" if stem else derived_key(payload)
    path = folder / name
    with _folder_lock(folder, exclusive=False):
        state = check_dir(path)
    if state == "ok":
        return path
    if state not in ("absent", "unrecorded"):
        raise _refuse(state)
    with build_folder(folder) as tmp_dir:
        out = tmp_dir / "out"
        out.mkdir()
        build(out)
        files = _hashes(out)
        for f in files:
            _fsync(out / f)
        _write_record(out / DIR_RECORD, payload, files=files)
        with _folder_lock(folder, exclusive=True):
            if check_dir(path) != "ok":
                if path.exists() or path.is_symlink():
                    _remove(path)
                os.rename(out, path)
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def check_built(path: Path) -> None:
    """A built file must be complete before it is named: fsynced, and an ONNX parseable
    (a writer that lost ENOSPC would otherwise leave a truncated model in the cache, and
    the next run a protobuf DecodeError)."""
    _fsync(path)
    if path.suffix != ".onnx":
        return
    import onnx

    try:
        onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError, onnx's own errors
        raise ValueError(
            f"building {path.name} wrote a file that is not a readable ONNX model "
            f"({type(e).__name__}); a full disk? nothing was cached"
        ) from None


def _write_record(path: Path, payload: dict[str, Any], **digests: Any) -> None:
    """What a derived model was made from and the sha256 of what was built, beside it."""
    record = dict(payload, created=time.strftime("%Y-%m-%dT%H:%M:%S"), **digests)
    text = json.dumps(record, indent=1, sort_keys=True, default=str)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
