"""Classification datasets: a CSV manifest, a class-per-folder tree, ImageNet label files.

- manifest: a CSV with `path` and `label` (index) or `label_name` columns, optional
  `sample_id` and `sha256`; paths relative to the dataset root.
- folder: class-per-folder tree; classes are the sorted folder names (torchvision's rule).
- imagenet: a folder plus one of the common ImageNet label files and the synset list.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from evalharness.data.dataset import (
    IMAGE_SUFFIXES,
    Dataset,
    Sample,
    register_loader,
    relative_id,
)
from evalharness.paths import resolve_path

log = logging.getLogger(__name__)


def _read_classes(root: Path, cfg: Mapping[str, Any]) -> list[str] | None:
    name = cfg.get("classes")
    if not name:
        return None
    path = root / name
    if not path.exists():
        raise FileNotFoundError(f"dataset '{cfg['name']}': class list not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _label_of(row: dict, classes: list[str]) -> tuple[int, str | None]:
    value = row.get("label")
    if value is not None and not (isinstance(value, float) and math.isnan(value)):
        text = str(value).strip()
        try:
            label = int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                return -1, f"label '{text}' is not a class index"
            if not as_float.is_integer():
                return -1, f"label '{text}' is not a whole number"
            label = int(as_float)
        if not 0 <= label < len(classes):
            return -1, f"label {label} out of range 0..{len(classes) - 1}"
        return label, None
    name = str(row.get("label_name", "") or "")
    if name in classes:
        return classes.index(name), None
    return -1, f"unknown class name '{name}'" if name else "no label"


@register_loader("manifest")
def load_manifest(cfg: Mapping[str, Any]) -> Dataset:
    root = resolve_path(cfg["root"])
    path = root / cfg["manifest"]
    if not path.exists():
        raise FileNotFoundError(f"dataset '{cfg['name']}': manifest not found: {path}")
    table = pd.read_csv(path, dtype={"sample_id": str, "label": str, "path": str})
    if "path" not in table:
        raise ValueError(f"{path}: the manifest has no 'path' column ({list(table.columns)})")
    if "label" not in table and "label_name" not in table:
        raise ValueError(f"{path}: the manifest has neither a 'label' nor a 'label_name' column")
    classes = _read_classes(root, cfg)
    if classes is None:
        if "label_name" not in table:
            raise ValueError(f"dataset '{cfg['name']}': give `classes:` or a label_name column")
        classes = sorted(table["label_name"].dropna().astype(str).unique())
    samples = []
    for i, row in enumerate(table.to_dict("records")):
        label, problem = _label_of(row, classes)
        file = root / str(row["path"])
        sid = row.get("sample_id")
        sid = str(sid) if isinstance(sid, str) and sid else relative_id(file, root)
        sha = row.get("sha256")
        sha = sha if isinstance(sha, str) and len(sha) == 64 else None
        samples.append(Sample(i, sid, file, label, problem, expected_sha256=sha))
    return Dataset(cfg["name"], samples, classes, "")


@register_loader("folder")
def load_folder(cfg: Mapping[str, Any]) -> Dataset:
    root = resolve_path(cfg["root"])
    if not root.is_dir():
        raise FileNotFoundError(f"dataset '{cfg['name']}': folder not found: {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    samples = []
    for label, cls in enumerate(classes):
        for f in sorted((root / cls).iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                samples.append(Sample(len(samples), relative_id(f, root), f, label))
    return Dataset(cfg["name"], samples, classes, "")


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


@register_loader("imagenet")
def load_imagenet(cfg: Mapping[str, Any]) -> Dataset:
    root = resolve_path(cfg["root"])
    labels_path = root / cfg["labels"]
    for p in (labels_path, root / cfg["synsets"]):
        if not p.exists():
            raise FileNotFoundError(f"dataset '{cfg['name']}': not found: {p}")
    wnids, names = read_synsets(root / cfg["synsets"])
    n_classes = int(cfg.get("num_classes") or len(names))
    if len(names) < n_classes:
        log.warning("%s names %d classes of %d; the rest are called class_<index>",
                    root / cfg["synsets"], len(names), n_classes)  # fmt: skip
        names = names + [f"class_{i}" for i in range(len(names), n_classes)]
    index_of_wnid = {w: i for i, w in enumerate(wnids)}
    images = root / cfg.get("images", ".")
    skip_missing = cfg.get("missing", "error") == "skip"
    samples = []
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
        samples.append(Sample(len(samples), relative_id(path, root), path, label, problem))
    if not samples:
        raise FileNotFoundError(_where_are_the_images(cfg, labels_path, images))
    return Dataset(cfg["name"], samples, names, "")


def _where_are_the_images(cfg: Mapping[str, Any], labels_path: Path, images: Path) -> str:
    """None of the label file's images is where it was looked for: say where, and the
    subfolder that has them when there is one (images in val/ under the root)."""
    listed = [f for f, _ in parse_imagenet_labels(labels_path)]
    head = (f"dataset '{cfg['name']}': none of the {len(listed)} images {labels_path.name} "
            f"lists is in {images}")  # fmt: skip
    if not listed:
        return f"dataset '{cfg['name']}': {labels_path} lists no images"
    for sub in sorted(p for p in images.rglob("*") if p.is_dir()):
        if (sub / listed[0]).exists():
            rel = sub.relative_to(resolve_path(cfg["root"])).as_posix()
            return f"{head}; they are in {sub}: dataset.images={rel}"
    return f"{head} (e.g. {listed[0]}); dataset.images=SUBFOLDER names where they are"
