"""A host pipeline is a tuple of stages; a stage is (kind, frozen spec) and is its own key.

Two configs share work exactly as far as their stage tuples share a prefix, which is what
the sweep engine memoizes on. Values flowing through: a path -> decode -> an HxWx3 uint8
array -> resize -> a Frame (pixels + Geometry) -> colour -> normalize -> a Frame whose
pixels are the host tensor the backend takes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalharness.preprocess.colour import ColourSpec, HostNormSpec, apply_colour, host_normalize
from evalharness.preprocess.decode import DecodeSpec, decode
from evalharness.preprocess.degrade import degrade
from evalharness.preprocess.geometry import Frame
from evalharness.preprocess.resize import ResizeSpec, resize

STAGE_ORDER = ("decode", "resize", "colour", "normalize")
_RUN: dict[str, Callable[[Any, Any], Any]] = {
    "decode": lambda path, spec: decode(Path(path), spec),
    "resize": lambda arr, spec: resize(arr, spec),
    "colour": lambda frame, spec: apply_colour(frame, spec),
    "normalize": lambda frame, spec: host_normalize(frame, spec),
    # after normalize, only for a dataset that generates its inputs (preprocess/degrade.py)
    "degrade": lambda frame, spec: degrade(frame, spec),
}


@dataclass(frozen=True)
class Stage:
    kind: str
    spec: Any

    # The engine hashes and compares stages for every sample x pipeline (trie walk, stage
    # reuse): the hash of the spec's many fields is computed once, and identity short-cuts.
    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.kind, self.spec)))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Stage):
            return NotImplemented
        return self._hash == other._hash and self.kind == other.kind and self.spec == other.spec

    def __reduce__(self):  # str hashes differ between processes: rebuild, never copy _hash
        return (Stage, (self.kind, self.spec))

    def __call__(self, x: Any) -> Any:
        return _RUN[self.kind](x, self.spec)

    def describe(self) -> dict[str, Any]:
        return {f"{self.kind}.{k}": v for k, v in dataclasses.asdict(self.spec).items()}


def build_pipeline(
    decode_spec: DecodeSpec, resize_spec: ResizeSpec, colour: ColourSpec, norm: HostNormSpec
) -> tuple[Stage, ...]:
    specs = (decode_spec, resize_spec, colour, norm)
    return tuple(Stage(kind, spec) for kind, spec in zip(STAGE_ORDER, specs, strict=True))


def run_pipeline(stages: tuple[Stage, ...], path: Path) -> Frame:
    """Run every stage on one sample: the reference path the engine's memo must agree with."""
    x: Any = path
    for stage in stages:
        x = stage(x)
    return x


def pixels(x: Any) -> Any:
    """The array inside a stage output (a Frame after resize, a bare array after decode)."""
    return x.pixels if isinstance(x, Frame) else x
