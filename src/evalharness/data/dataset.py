"""Datasets: a list of samples (id, path, target) plus class names and a content hash.

A sample's id is explicit (a manifest's `sample_id` column) or its path relative to the
dataset root: `img.gif` and `img.tiff` are two samples, never one. Two samples with the same
id (or the same file listed twice) are refused: every per-sample table joins on the id.

The dataset hash covers what decides the numbers: every sample's id, target and file
*content* (SHA-256; `hash: stat` trusts size + mtime instead, which is cheaper and is said
so in summary.csv). A manifest's `sha256` column is checked against the file: a changed
image becomes an error row naming it, not a silent new number.

Every sample's file must lie inside the dataset root once links and `..` are resolved
(realpath): a manifest row `../../secret/x.jpg`, an absolute path or a symlink out of the
root refuses the dataset before any file is opened or hashed, unless
`dataset.allow_outside_root=true` says the listing may point elsewhere. Duplicates are found
by real path too, so a link and the file it names are one file, not two samples.

Loaders per annotation format live in their own modules and register under their `kind`
(classification: manifest, folder, imagenet; detection: coco, yolo; text: icdar2015).
A sample whose target is unusable is kept with a `problem`, so it shows up as an error row
instead of vanishing from the counts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalharness.hashing import file_sha256
from evalharness.paths import resolve_path
from evalharness.registry import Registry

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
HASH_MODES = ("content", "stat")


@dataclass(frozen=True)
class Sample:
    index: int
    sample_id: str
    path: Path
    label: int = -1  # classification: the class index (-1: none or unusable)
    problem: str | None = None  # set when the sample cannot be scored; becomes an error row
    target: Any = field(default=None, compare=False)  # detection/text: the annotations
    problem_stage: str = "label"
    expected_sha256: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Dataset:
    name: str
    samples: list[Sample]
    classes: list[str]
    content_hash: str
    task: str = "classification"
    hash_mode: str = "content"
    extra: dict = field(default_factory=dict, compare=False)  # task data (COCO index, ...)

    def __len__(self) -> int:
        return len(self.samples)


LoaderFn = Callable[[Mapping[str, Any]], Dataset]
LOADERS: Registry[LoaderFn] = Registry(
    "dataset kind", "evalharness.data.loaders", entry_points="evalharness.datasets"
)


def register_loader(kind: str):
    return LOADERS.register(kind)


def relative_id(path: Path, root: Path) -> str:
    """The sample id of a file: its path relative to the dataset root, with forward slashes."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def file_digest(path: Path, mode: str) -> str:
    try:
        if mode == "stat":
            st = os.stat(path)
            return f"{st.st_size}:{st.st_mtime_ns}"
        return file_sha256(path)
    except OSError as e:  # missing, unreadable, a loop: the decoder reports it per sample
        return f"unreadable:{e.errno}"


def _check_ids(ds: Dataset) -> None:
    ids = Counter(s.sample_id for s in ds.samples)
    dup = [k for k, n in ids.items() if n > 1]
    if dup:
        raise ValueError(
            f"dataset '{ds.name}': {len(dup)} sample id(s) occur more than once "
            f"({', '.join(repr(d) for d in dup[:3])}); every sample needs its own id"
        )
    paths = Counter(os.path.realpath(s.path) for s in ds.samples)  # a link is its target
    dup = [k for k, n in paths.items() if n > 1]
    if dup:
        raise ValueError(
            f"dataset '{ds.name}': {len(dup)} file(s) listed more than once ({', '.join(dup[:3])})"
        )


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def allowed_reader(root: Path, cfg: Mapping[str, Any]) -> Callable[[Path], bool]:
    """For loaders that open a file while listing (a YOLO image's header): whether this
    path may be read (inside the root, or the config allows outside)."""
    if _allow_outside(cfg):
        return lambda path: True
    real_root = os.path.realpath(root)
    return lambda path: _inside(os.path.realpath(path), real_root)


def _check_inside_root(ds: Dataset, root: Path, allow: bool) -> None:
    """Refuse, before any file is read, samples whose real path leaves the root."""
    if allow:
        return
    real_root = os.path.realpath(root)
    outside = [s for s in ds.samples if not _inside(os.path.realpath(s.path), real_root)]
    if outside:
        shown = ", ".join(repr(str(s.path)) for s in outside[:3])
        raise ValueError(
            f"dataset '{ds.name}': {len(outside)} file(s) lie outside the dataset root "
            f"{root} once links and '..' are resolved ({shown}); nothing was read. Only the "
            "root's files are read unless dataset.allow_outside_root=true"
        )


def _allow_outside(cfg: Mapping[str, Any]) -> bool:
    value = cfg.get("allow_outside_root", False)
    if not isinstance(value, bool):
        raise ValueError(f"dataset.allow_outside_root must be true or false, got {value!r}")
    return value


def _hash_and_verify(ds: Dataset, mode: str) -> Dataset:
    """The content hash over ids, targets and file contents; manifest sha256 checked."""
    h = hashlib.sha256(f"{ds.task}\n{len(ds.classes)}\n".encode())
    samples = []
    for s in ds.samples:
        digest = file_digest(s.path, mode)
        if (
            mode == "content"
            and s.expected_sha256
            and not digest.startswith("unreadable")
            and digest != s.expected_sha256
            and s.problem is None
        ):
            why = (
                f"content changed: SHA-256 {digest[:12]}... is not the manifest's "
                f"{s.expected_sha256[:12]}..."
            )
            s = dataclasses.replace(s, problem=why, problem_stage="dataset")
        h.update(f"{s.sample_id}\t{s.label}\t{s.target!r}\t{digest}\n".encode())
        samples.append(s)
    return Dataset(ds.name, samples, ds.classes, h.hexdigest(), ds.task, mode, ds.extra)


def spread(samples: list[Sample], n: int) -> list[Sample]:
    """n samples evenly spaced over the set: class-sorted sets (folders) give every class."""
    if n >= len(samples):
        return list(samples)
    step = len(samples) / n
    return [samples[int(i * step)] for i in range(n)]


def _limit(cfg: Mapping[str, Any]) -> int | None:
    limit = cfg.get("limit")
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"dataset.limit must be a positive whole number or null, got {limit!r}")
    return limit


def load_dataset(cfg: Mapping[str, Any]) -> Dataset:
    """The dataset its settings describe (plain data: config/ resolved the YAML into them)."""
    kind = cfg.get("kind", "manifest")
    mode = cfg.get("hash", "content")
    if mode not in HASH_MODES:
        raise ValueError(f"dataset.hash must be one of {HASH_MODES}, got '{mode}'")
    limit = _limit(cfg)
    allow = _allow_outside(cfg)
    ds = LOADERS.get(kind)(cfg)
    if limit:
        # limit_spread: evenly spaced instead of the first `limit` (every class of a
        # class-sorted folder set, as the real-data tests use their subsets)
        picked = spread(ds.samples, limit) if cfg.get("limit_spread") else ds.samples[:limit]
        ds = Dataset(ds.name, picked, ds.classes, "", ds.task, mode, ds.extra)
    if not ds.samples:
        raise ValueError(f"dataset '{ds.name}' has no samples (root {cfg.get('root')})")
    if cfg.get("root") is not None:
        _check_inside_root(ds, resolve_path(cfg["root"]), allow)
    _check_ids(ds)
    return _hash_and_verify(ds, mode)
