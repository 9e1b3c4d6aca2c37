"""Datasets: loaders per annotation format register under their `kind` (dataset.py)."""

from __future__ import annotations


def register_all() -> None:
    """Import every loader module (each registers its kinds); cheap after the first call."""
    from evalharness.data import classification, detection, filename_labels, icdar  # noqa: F401
