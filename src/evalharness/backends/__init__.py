"""Inference backends; importing this package registers all three."""

from evalharness.backends import onnxruntime_backend, openvino_backend, torch_backend  # noqa: F401
from evalharness.backends.base import BACKENDS

__all__ = ["BACKENDS"]
