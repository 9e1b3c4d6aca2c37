"""Datasets: a list of samples (id, path, label) plus class names and a content hash.

Sources:
- manifest: a CSV with `path` and `label` (index) or `label_name` columns, optional
  `sample_id`; paths relative to the dataset root.
- folder: class-per-folder tree; classes are the sorted folder names (torchvision's rule).
A sample whose label is out of range or whose class name is unknown is kept with label -1 and
a reason, so it shows up as an error row instead of vanishing from the counts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from evalharness.models.source import resolve_path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Sample:
    index: int
    sample_id: str
    path: Path
    label: int
    problem: str | None = None  # set when the label itself is unusable


@dataclass(frozen=True)
class Dataset:
    name: str
    samples: list[Sample]
    classes: list[str]
    content_hash: str

    def __len__(self) -> int:
        return len(self.samples)


def _read_classes(root: Path, cfg: DictConfig) -> list[str] | None:
    name = cfg.get("classes")
    if not name:
        return None
    path = root / name
    if not path.exists():
        raise FileNotFoundError(f"dataset '{cfg.name}': class list not found: {path}")
    return [
        line.split(maxsplit=0)[0].strip() for line in path.read_text().splitlines() if line.strip()
    ]


def _label_of(row: pd.Series, classes: list[str]) -> tuple[int, str | None]:
    if "label" in row and pd.notna(row["label"]):
        label = int(row["label"])
        if not 0 <= label < len(classes):
            return -1, f"label {label} out of range 0..{len(classes) - 1}"
        return label, None
    name = str(row.get("label_name", ""))
    if name in classes:
        return classes.index(name), None
    return -1, f"unknown class name '{name}'"


def load_manifest(cfg: DictConfig) -> Dataset:
    root = resolve_path(cfg.root)
    path = root / cfg.manifest
    if not path.exists():
        raise FileNotFoundError(f"dataset '{cfg.name}': manifest not found: {path}")
    table = pd.read_csv(path, dtype={"sample_id": str})
    classes = _read_classes(root, cfg)
    if classes is None:
        if "label_name" not in table:
            raise ValueError(f"dataset '{cfg.name}': give `classes:` or a label_name column")
        classes = sorted(table["label_name"].astype(str).unique())
    samples = []
    for i, row in enumerate(table.to_dict("records")):
        label, problem = _label_of(pd.Series(row), classes)
        sid = str(row["sample_id"]) if "sample_id" in row else Path(row["path"]).stem
        samples.append(Sample(i, sid, root / row["path"], label, problem))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Dataset(cfg.name, samples, classes, digest)


def load_folder(cfg: DictConfig) -> Dataset:
    root = resolve_path(cfg.root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset '{cfg.name}': folder not found: {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    samples, h = [], hashlib.sha256()
    for label, cls in enumerate(classes):
        for f in sorted((root / cls).iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                rel = f"{cls}/{f.name}"
                samples.append(Sample(len(samples), rel, f, label))
                h.update(f"{rel}\t{f.stat().st_size}\n".encode())
    return Dataset(cfg.name, samples, classes, h.hexdigest())


LOADERS = {"manifest": load_manifest, "folder": load_folder}


def load_dataset(cfg: DictConfig) -> Dataset:
    kind = cfg.get("kind", "manifest")
    if kind not in LOADERS:
        raise ValueError(f"dataset '{cfg.name}': unknown kind '{kind}'; valid: {sorted(LOADERS)}")
    ds = LOADERS[kind](cfg)
    limit = cfg.get("limit")
    if limit:
        ds = Dataset(ds.name, ds.samples[: int(limit)], ds.classes, ds.content_hash)
    return ds
