"""What a task draws for one image and one config: primitives, not pictures.

The report shows, for every image whose outcome flips between two configs, what each config
made of it. What that is belongs to the task (top-5 bars; boxes with scores; polygons and the
probability map DB binarizes), so the task says it through `Task.draw`, in the few primitives
below; the report turns each into a thumbnail (report/thumbs.py) and never names a task.

Coordinates are in the pixels of the panel's own image: an `Overlay` on the source image takes
source-image points (boxes and polygons are stored mapped back to it); a `Heat` is a map in
the model's pixels (a probability map) drawn as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalharness.preprocess.geometry import Geometry


@dataclass(frozen=True)
class Shape:
    """A box (2 corners, x1 y1 x2 y2 as (2, 2)) or a polygon ((k, 2), x y) on an image."""

    points: np.ndarray
    truth: bool = False  # ground truth (drawn in its own colour) or the config's output
    text: str = ""  # drawn beside it: a class and a score
    ignored: bool = False  # a region the metric ignores (COCO crowd, ICDAR '###')
    box: bool = False  # two corners, not a polygon


@dataclass(frozen=True)
class Overlay:
    """Shapes drawn on an image (HxWx3 uint8)."""

    image: np.ndarray
    shapes: tuple[Shape, ...]
    title: str


@dataclass(frozen=True)
class Bars:
    """Horizontal bars, largest first: top-k classes and their probabilities."""

    labels: tuple[str, ...]
    values: tuple[float, ...]  # 0..1; NaN when the config's output does not say
    marked: tuple[bool, ...]  # the bar of the true class
    title: str


@dataclass(frozen=True)
class Heat:
    """A 2-D map in 0..1 (a probability map, a binary map), in the model's pixels."""

    values: np.ndarray
    title: str


Panel = Overlay | Bars | Heat


@dataclass(frozen=True)
class DrawInput:
    """One image under one config, as the report has it.

    row:      the config's prediction row (predictions.parquet columns), or None
    outputs:  the model's raw outputs for this image by role (re-run for the few images the
              report shows), or None when no session could be loaded
    geometry: how the config framed the image (source -> model pixels), or None
    """

    sample: Any
    image: np.ndarray  # the source image, HxWx3 uint8 RGB
    row: Mapping[str, Any] | None
    outputs: Mapping[str, np.ndarray] | None = None
    geometry: Geometry | None = None
    classes: Sequence[str] = field(default_factory=tuple)

    def class_name(self, index: int) -> str:
        i = int(index)
        return str(self.classes[i]) if 0 <= i < len(self.classes) else str(i)


@dataclass(frozen=True)
class Described:
    """One config's prediction for one image, in a table's words.

    pred:  what it predicted ("tabby", "3 boxes: person 0.91, ...")
    score: how sure it was (top-1 probability; the highest detection score)
    level: a per-image value whose change says how far the image moved between two configs
           (the true class's logit); None: the task's per-image score (F1, F) says it
    truth: the ground truth in words, for filtering by class
    """

    pred: str
    score: float = float("nan")
    level: float | None = None
    truth: str = ""  # what the image holds: its class; the classes of its objects
