"""The package version (a leaf: the root package and provenance both read it)."""

__version__ = "0.1.0"
