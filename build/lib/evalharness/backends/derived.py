"""The cache of derived models: exports, normalized graphs, fp16/int8 copies, conversions.

A derived model is named by the hash of everything it was made from (the content hash of
every source file, the settings, the library versions that made it), lives under
`<cache_dir>/<kind>/`, and is never written beside a user's file. It is built into a temp
name and renamed, so a kill mid-build leaves no half file under the final name; two
processes racing build twice and one rename wins, with identical content.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


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


def derived_file(
    cache_dir: str | Path,
    kind: str,
    payload: dict[str, Any],
    suffix: str,
    build: Callable[[Path], None],
    stem: str = "",
) -> Path:
    """The cached file for `payload`, built by `build(tmp_path)` when it does not exist yet."""
    folder = cache_root(cache_dir) / kind
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{stem}-{derived_key(payload)}" if stem else derived_key(payload)
    path = folder / f"{name}{suffix}"
    if path.exists():
        return path
    tmp = folder / f".{name}.tmp{os.getpid()}{suffix}"
    try:
        build(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _write_record(path.with_name(path.name + ".json"), payload)
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
    if path.is_dir():
        return path
    tmp = folder / f".{name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        build(tmp)
        _write_record(tmp / "derived.json", payload)
        try:
            os.rename(tmp, path)
        except OSError:  # another process finished first: its copy is the same
            if not path.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _write_record(path: Path, payload: dict[str, Any]) -> None:
    """What a derived model was made from, beside it, for a person wondering later."""
    record = dict(payload, created=time.strftime("%Y-%m-%dT%H:%M:%S"))
    path.write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
