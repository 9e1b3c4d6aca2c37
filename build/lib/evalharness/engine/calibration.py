"""Calibration tensors: each quantizing config calibrates with its *own* preprocessing
(decoder, resize, colour, normalization) of the calibration images (chosen by
data/calibration.py), as a deployment calibrates with what it serves; the quantized model's
cache key holds the images' content hashes and that whole chain.
"""

from __future__ import annotations

import numpy as np

from evalharness.data.dataset import Sample
from evalharness.preprocess.errors import StageError
from evalharness.preprocess.pipeline import run_pipeline


def tensors(spec, samples: list[Sample]) -> list[np.ndarray]:
    """The config's own host tensors of the calibration images (failures skipped)."""
    out = []
    for s in samples:
        try:
            out.append(run_pipeline(spec.stages, s.path).pixels)
        except StageError:
            continue
    if not out:
        raise ValueError("no calibration image could be preprocessed")
    return out
