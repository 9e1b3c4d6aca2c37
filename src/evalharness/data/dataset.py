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
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from evalharness.models.source import resolve_path

log = logging.getLogger(__name__)

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


WNID = re.compile(r"^n\d{8}$")


def read_synsets(path: Path) -> tuple[list[str], list[str]]:
    """synset_words.txt-style: `n01440764 tench, Tinca tinca` -> (wnids, names).

    Reading stops at the first line that is not `<wnid> <name>`: a truncated file must not
    shift the meaning of the indices after it.
    """
    wnids, names = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        wnid, _, name = line.strip().partition(" ")
        if not WNID.match(wnid):
            log.warning(
                "%s:%d: not a synset line (%r); the list ends here", path, lineno, line[:40]
            )
            break
        wnids.append(wnid)
        names.append(name.split(",")[0].strip() or wnid)
    return wnids, names


def parse_imagenet_labels(path: Path) -> list[tuple[str, str]]:
    """(file, label token) from any of the common ImageNet validation label formats:
    `file idx` (val.txt), `./path, idx` (Caffe list) or LOC_val_solution.csv (`id,wnid ...`).
    """
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if lines and lines[0].lower().startswith("imageid,"):  # LOC_val_solution.csv
        out = []
        for ln in lines[1:]:
            image_id, _, boxes = ln.partition(",")
            out.append((f"{image_id}.JPEG", boxes.split()[0] if boxes.split() else ""))
        return out
    out = []
    for ln in lines:
        if "," in ln:
            file, _, label = ln.rpartition(",")
        else:
            file, _, label = ln.rpartition(" ")
        out.append((file.strip().removeprefix("./"), label.strip()))
    return out


def load_imagenet(cfg: DictConfig) -> Dataset:
    root = resolve_path(cfg.root)
    labels_path = root / cfg.labels
    for p in (labels_path, root / cfg.synsets):
        if not p.exists():
            raise FileNotFoundError(f"dataset '{cfg.name}': not found: {p}")
    wnids, names = read_synsets(root / cfg.synsets)
    n_classes = int(cfg.get("num_classes") or len(names))
    if len(names) < n_classes:
        log.warning("%s names %d classes of %d; the rest are called class_<index>",
                    root / cfg.synsets, len(names), n_classes)  # fmt: skip
        names = names + [f"class_{i}" for i in range(len(names), n_classes)]
    index_of_wnid = {w: i for i, w in enumerate(wnids)}
    images = root / cfg.get("images", ".")
    skip_missing = cfg.get("missing", "error") == "skip"
    samples, h = [], hashlib.sha256()
    for file, token in parse_imagenet_labels(labels_path):
        path = images / file
        if skip_missing and not path.exists():
            continue
        problem = None
        if token in index_of_wnid:
            label = index_of_wnid[token]
        elif token.lstrip("-").isdigit():
            label = int(token)
            if not 0 <= label < len(names):
                label, problem = -1, f"label {token} out of range 0..{len(names) - 1}"
        else:
            label, problem = -1, f"unknown class '{token}'"
        samples.append(Sample(len(samples), Path(file).stem, path, label, problem))
        h.update(f"{file}\t{token}\n".encode())
    return Dataset(cfg.name, samples, names, h.hexdigest())


def spread(samples: list[Sample], n: int) -> list[Sample]:
    """n samples evenly spaced over the set: class-sorted sets (folders) give every class."""
    if n >= len(samples):
        return list(samples)
    step = len(samples) / n
    return [samples[int(i * step)] for i in range(n)]


LOADERS = {"manifest": load_manifest, "folder": load_folder, "imagenet": load_imagenet}


def load_dataset(cfg: DictConfig) -> Dataset:
    kind = cfg.get("kind", "manifest")
    if kind not in LOADERS:
        raise ValueError(f"dataset '{cfg.name}': unknown kind '{kind}'; valid: {sorted(LOADERS)}")
    ds = LOADERS[kind](cfg)
    limit = cfg.get("limit")
    if limit:
        ds = Dataset(ds.name, ds.samples[: int(limit)], ds.classes, ds.content_hash)
    return ds
