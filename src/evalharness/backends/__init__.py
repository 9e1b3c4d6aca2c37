"""Inference backends; importing this package registers every backend.

Backend modules are light: each imports its runtime inside `load()`, so registering a
backend whose optional runtime is absent costs nothing and breaks only configs that use it.
"""

from evalharness.backends import (  # noqa: F401
    litert_backend,
    ncnn_backend,
    onnxruntime_backend,
    openvino_backend,
    torch_backend,
    tract_backend,
)
from evalharness.backends.base import BACKENDS

__all__ = ["BACKENDS"]
