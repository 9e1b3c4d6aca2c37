"""Image-to-image datasets: paired folders, clean images with a generated degradation, and
inputs without targets.

- image_pairs:  `root/<input>/` (LR) and `root/<target>/` (HR), matched by file name
                without its extension (`LRx4/baby.png` <-> `HR/baby.png`; SwinIR's
                `baby_LRBI_x4.png` style names need `input_suffix: _LRBI_x4`). An input
                without a target is an error row naming the file it looked for.
- image_clean:  clean images only; the dataset's `degradation` makes each input on the fly
                (preprocess/degrade.py: `{kind: noise, sigma: 25, seed: 0}` or
                `{kind: downscale, scale: 4}` with the resize factor's filter); the clean
                image is the target.
- image_inputs: inputs only: every config is compared with the reference config's output
                (psnr_ref, tol_fail, agree_ref), nothing with a ground truth.

Samples are in natural name order (img_2 before img_10). The target is part of the
dataset hash by content (its sha256 sits in the target's repr), as the input is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalharness.data.dataset import (
    IMAGE_SUFFIXES,
    Dataset,
    Sample,
    file_digest,
    register_loader,
    relative_id,
)
from evalharness.paths import resolve_path

TASK = "image_to_image"
DEGRADATIONS = ("noise", "downscale")


@dataclass(frozen=True)
class ImageTarget:
    """A sample's ground-truth image: its id (path relative to the root) and content digest
    (what the dataset hash sees), and where to read it (not part of the hash)."""

    sample_id: str
    digest: str
    path: Path = field(repr=False, compare=False)


def _natural_key(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def _images(folder: Path, name: str) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset '{name}': folder not found: {folder}")
    files = (f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    return sorted(files, key=_natural_key)


def _target(path: Path, root: Path, mode: str) -> ImageTarget:
    return ImageTarget(relative_id(path, root), file_digest(path, mode), path)


def _dataset(cfg: Mapping[str, Any], samples: list[Sample], layout: str, **extra) -> Dataset:
    return Dataset(cfg["name"], samples, [], "", TASK, extra=dict(layout=layout, **extra))


@register_loader("image_pairs")
def load_pairs(cfg: Mapping[str, Any]) -> Dataset:
    root = resolve_path(cfg["root"])
    inputs = _images(root / str(cfg.get("input", "LR")), cfg["name"])
    target_dir = root / str(cfg.get("target", "HR"))
    targets = {f.stem: f for f in _images(target_dir, cfg["name"])}
    suffix = str(cfg.get("input_suffix") or "")
    mode = str(cfg.get("hash", "content"))
    samples = []
    for i, f in enumerate(inputs):
        stem = f.stem[: -len(suffix)] if suffix and f.stem.endswith(suffix) else f.stem
        hr = targets.get(stem)
        if hr is None:
            problem = f"no target {stem}.* in {target_dir.name}/ for input {f.name}"
            samples.append(Sample(i, relative_id(f, root), f, problem=problem))
            continue
        samples.append(Sample(i, relative_id(f, root), f, target=_target(hr, root, mode)))
    return _dataset(cfg, samples, "paired")


def check_degradation(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The `degradation` settings as plain data, checked before any image is read."""
    deg = dict(cfg.get("degradation") or {})
    kind = deg.get("kind")
    if kind not in DEGRADATIONS:
        raise ValueError(
            f"dataset '{cfg['name']}': degradation.kind must be one of {DEGRADATIONS}, got {kind!r}"
        )
    if kind == "noise":
        sigma = deg.get("sigma")
        if isinstance(sigma, bool) or not isinstance(sigma, int | float) or sigma <= 0:
            raise ValueError(f"dataset '{cfg['name']}': degradation.sigma must be > 0")
        deg.setdefault("seed", 0)
        deg.setdefault("clip", False)
    else:
        scale = deg.get("scale")
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
            raise ValueError(f"dataset '{cfg['name']}': degradation.scale must be >= 2")
    return deg


@register_loader("image_clean")
def load_clean(cfg: Mapping[str, Any]) -> Dataset:
    degradation = check_degradation(cfg)
    root = resolve_path(cfg["root"])
    files = _images(root / str(cfg.get("images", ".")), cfg["name"])
    mode = str(cfg.get("hash", "content"))
    samples = [
        Sample(i, relative_id(f, root), f, target=_target(f, root, mode))
        for i, f in enumerate(files)
    ]
    return _dataset(cfg, samples, "clean", degradation=degradation)


@register_loader("image_inputs")
def load_inputs(cfg: Mapping[str, Any]) -> Dataset:
    root = resolve_path(cfg["root"])
    files = _images(root / str(cfg.get("images", ".")), cfg["name"])
    samples = [Sample(i, relative_id(f, root), f) for i, f in enumerate(files)]
    return _dataset(cfg, samples, "inputs")
