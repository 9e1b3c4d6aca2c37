"""Calibration images for quantization: chosen once, never scored.

A sweep that quantizes (precision int8_ort / int8_nncf) needs images to calibrate on. By
default they are held out of the evaluation set: chosen by a hash of each sample_id (so the
choice is the same for every process, shard and on-demand run, and does not depend on file
order), N of them (`calibration.n`, 300), balanced per class when the task labels classes
and every class has more than N / n_classes images (CIFAR-10: 30 per class), else the N
lowest hashes (ImageNet val 1300 has 725 classes in 1,300 images). They are removed from
*every* config of the sweep, fp32 reference included, so every row is scored on the same
images; summary.csv's `n` says how many were scored. `calibration.dataset` names a separate
dataset config to calibrate on instead (nothing is then held out).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import replace

from evalharness.data.dataset import Dataset, Sample


def _rank(sample_id: str) -> str:
    return hashlib.sha256(sample_id.encode()).hexdigest()


def choose(dataset: Dataset, n: int, balanced: bool) -> list[Sample]:
    """The calibration samples: per class (`balanced`: the task labels classes) when every
    class has enough, else globally."""
    usable = [s for s in dataset.samples if s.problem is None]
    if n >= len(usable):
        raise ValueError(
            f"calibration.n={n} would hold out every usable image of '{dataset.name}' "
            f"({len(usable)}); lower calibration.n or give calibration.dataset"
        )
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for s in usable:
        by_class[s.label].append(s)
    k = -(-n // max(1, len(by_class)))  # ceil: per-class share
    if balanced and all(len(v) > k for v in by_class.values()):
        chosen = [
            s for v in by_class.values() for s in sorted(v, key=lambda s: _rank(s.sample_id))[:k]
        ]
        chosen = sorted(chosen, key=lambda s: _rank(s.sample_id))[:n]
    else:
        chosen = sorted(usable, key=lambda s: _rank(s.sample_id))[:n]
    return sorted(chosen, key=lambda s: s.index)


def hold_out(dataset: Dataset, calib: list[Sample]) -> Dataset:
    """The dataset without the calibration samples (original indices kept), new hash."""
    ids = {s.sample_id for s in calib}
    kept = [s for s in dataset.samples if s.sample_id not in ids]
    h = hashlib.sha256(dataset.content_hash.encode())
    for sid in sorted(ids):
        h.update(f"calib\t{sid}\n".encode())
    return replace(dataset, samples=kept, content_hash=h.hexdigest())


def calibration_key(calib: list[Sample], dataset_hash: str) -> str:
    """Names the calibration set: which images, and (via the dataset hash) their contents."""
    h = hashlib.sha256(dataset_hash.encode())
    for s in calib:
        h.update(f"{s.sample_id}\n".encode())
    return h.hexdigest()[:16]
