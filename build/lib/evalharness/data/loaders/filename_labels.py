"""Flat folders whose file names carry the label (`dataset=filename_labels`).

Two layouts people have on disk without any label file:

- ImageNet synset prefixes (`n01440764_tench.JPEG`, `n01440764_10026.JPEG`, the layout of
  many validation subsets): the index is the synset's position in the standard sorted list
  of the 1,000 ILSVRC-2012 synsets shipped with the package (imagenet_synsets.txt). Never
  from the synsets present in the folder: a subset with 50 classes would otherwise renumber
  them 0..49 and every prediction of a 1,000-class model would be scored against the wrong
  class, silently.
- A regular expression with a named group `label`, matched against the whole file name
  (`pattern: '(?P<label>[a-z]+)_\\d+\\.jpg'`): the label is a class name, looked up in a
  `classes` file (one name a line, in the model's index order), else in the sorted names
  found -- which is only right when the model was trained with that order, hence the
  warning.

A file that does not fit (no synset prefix, an unknown synset, a name the pattern does not
match) stays in the dataset as an error row with the reason: it is counted, not dropped.
Sample ids are paths relative to the root.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evalharness.data.dataset import IMAGE_SUFFIXES, Dataset, Sample, register_loader, relative_id
from evalharness.data.loaders.classification import read_synsets
from evalharness.paths import resolve_path

log = logging.getLogger(__name__)

STANDARD_SYNSETS = Path(__file__).parents[1] / "imagenet_synsets.txt"
SYNSET_PREFIX = re.compile(r"(n\d{8})(?:_|\.|$)")


def _files(root: Path, recursive: bool) -> list[Path]:
    found = root.rglob("*") if recursive else root.iterdir()
    files = [p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: relative_id(p, root))


def _path_of(root: Path, name: str) -> Path:
    """A list file named in the config: relative to the dataset root, else as given."""
    path = root / name
    return path if path.exists() else resolve_path(name)


def _synset_samples(files: list[Path], root: Path, wnids: list[str]) -> list[Sample]:
    index = {w: i for i, w in enumerate(wnids)}
    samples = []
    for f in files:
        m = SYNSET_PREFIX.match(f.name)
        label, problem = -1, None
        if m is None:
            problem = "no synset prefix (nXXXXXXXX_) in the file name"
        elif m.group(1) not in index:
            problem = f"synset {m.group(1)} is not in the synset list"
        else:
            label = index[m.group(1)]
        samples.append(Sample(len(samples), relative_id(f, root), f, label, problem))
    return samples


def _pattern(text: str) -> re.Pattern:
    try:
        pattern = re.compile(text)
    except re.error as e:
        raise ValueError(f"dataset.pattern {text!r} is not a regular expression: {e}") from None
    if "label" not in pattern.groupindex:
        raise ValueError(
            f"dataset.pattern {text!r} has no named group 'label', e.g. '(?P<label>[a-z]+)_\\d+'"
        )
    return pattern


def _pattern_samples(files: list[Path], root: Path, pattern, classes) -> tuple[list, list]:
    found = [pattern.fullmatch(f.name) for f in files]
    if classes is None:
        classes = sorted({m.group("label") for m in found if m is not None})
        log.warning(
            "dataset.classes not given: %d class indices from the sorted names found in %s; "
            "give a classes file if the model was trained with another order",
            len(classes),
            root,
        )
    index = {c: i for i, c in enumerate(classes)}
    samples = []
    for f, m in zip(files, found, strict=True):
        label, problem = -1, None
        if m is None:
            problem = f"file name does not match dataset.pattern {pattern.pattern!r}"
        elif m.group("label") not in index:
            problem = f"class '{m.group('label')}' is not in the classes list"
        else:
            label = index[m.group("label")]
        samples.append(Sample(len(samples), relative_id(f, root), f, label, problem))
    return samples, classes


@register_loader("filename_labels")
def load_filename_labels(cfg: Mapping[str, Any]) -> Dataset:
    root = resolve_path(cfg["root"])
    if not root.is_dir():
        raise FileNotFoundError(f"dataset '{cfg['name']}': folder not found: {root}")
    files = _files(root, bool(cfg.get("recursive", False)))
    if cfg.get("pattern"):
        classes = None
        if cfg.get("classes"):
            path = _path_of(root, str(cfg["classes"]))
            if not path.exists():
                raise FileNotFoundError(f"dataset '{cfg['name']}': class list not found: {path}")
            classes = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
        samples, classes = _pattern_samples(files, root, _pattern(str(cfg["pattern"])), classes)
        return Dataset(cfg["name"], samples, classes, "")
    synsets = _path_of(root, str(cfg["synsets"])) if cfg.get("synsets") else STANDARD_SYNSETS
    if not synsets.exists():
        raise FileNotFoundError(f"dataset '{cfg['name']}': synset list not found: {synsets}")
    wnids, names = read_synsets(synsets)
    return Dataset(cfg["name"], _synset_samples(files, root, wnids), names, "")
