"""What a backend is: `load(variant) -> Session`, and `Session.infer(batch) -> logits`.

A model variant is everything that changes the model rather than the host pipeline: the
backend, where normalization lives (host / graph / ov_ppp), its mean and std, and the
numeric precision. Each variant is built once per sweep and fed every config routed to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from evalharness.models.source import ModelSpec
from evalharness.registry import Registry

PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class ModelVariant:
    model: ModelSpec
    backend: str
    placement: str  # host | graph | ov_ppp
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    precision: str = "fp32"
    threads: int = 1

    @property
    def in_graph_norm(self) -> tuple | None:
        """The mean/std the model itself applies, or None when the host normalizes."""
        return (self.mean, self.std) if self.placement != "host" else None


class Session(Protocol):
    def infer(self, batch: np.ndarray) -> np.ndarray: ...


class Backend(Protocol):
    name: str

    def load(self, variant: ModelVariant, cache_dir: str) -> Session: ...

    def versions(self) -> dict[str, str]: ...


BACKENDS: Registry[type] = Registry("backend")
