"""Per-image error of run B's tensor against run A's, in the four usual forms.

Each is computed per image (the tensor flattened), so that flipped and control images can
be summarised separately: one image's large error is the question, a mean over the batch
would hide it. A is the reference side: relative error and SQNR are relative to A's norm.

- rel_l2:  ||b - a|| / ||a||     (0 when equal; inf when a is all zero and b is not)
- sqnr_db: 20 log10(||a|| / ||b - a||), the signal-to-quantization-noise ratio that
           qdq_loss_debug reports (inf when equal; here per image, not over the batch)
- cosine:  a.b / (||a|| ||b||)   (1 when both are zero, 0 when only one is)
- max_abs: max |b - a|
"""

from __future__ import annotations

import numpy as np

METRICS = ("rel_l2", "sqnr_db", "cosine", "max_abs")
# for which metrics a larger value is worse (the "p90" column is the worse tail)
LARGER_IS_WORSE = {"rel_l2": True, "sqnr_db": False, "cosine": False, "max_abs": True}


def per_image(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """The four metrics for each image of two (N, ...) tensors of the same size per image.

    Only the element order must agree, not the shape: a runtime without a batch axis or
    with its own layout of a vector (ncnn) is compared flattened, as every metric is.
    """
    a2 = a.reshape(len(a), -1).astype(np.float64)
    b2 = b.reshape(len(b), -1).astype(np.float64)
    if a2.shape != b2.shape:
        raise ValueError(f"sizes differ: {a.shape} vs {b.shape}")
    d = b2 - a2
    na, nb, nd = (np.linalg.norm(v, axis=1) for v in (a2, b2, d))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(na > 0, nd / na, np.where(nd > 0, np.inf, 0.0))
        sqnr = np.where(nd > 0, 20 * np.log10(na / nd), np.inf)
        cos = np.where(
            (na > 0) & (nb > 0), (a2 * b2).sum(1) / (na * nb), np.where(na == nb, 1.0, 0.0)
        )
    mx = np.abs(d).max(axis=1) if d.shape[1] else np.zeros(len(d))
    return {"rel_l2": rel, "sqnr_db": sqnr, "cosine": cos, "max_abs": mx}


def summary(values: np.ndarray, metric: str) -> tuple[float, float]:
    """(median, 90th percentile of the error) over images: the p90 is the worse tail, i.e.
    the 10th percentile for SQNR and cosine, where smaller is worse."""
    if values.size == 0:
        return float("nan"), float("nan")
    q = 90 if LARGER_IS_WORSE[metric] else 10
    # no interpolation: an identical image's SQNR is inf, and inf - inf would give nan
    tail = np.percentile(values, q, method="higher" if q == 90 else "lower")
    return float(np.median(values)), float(tail)
