"""Memory: how large a chunk may be, decided at planning (before the run dir is claimed), so a
resumed or sharded run cuts the same chunks."""

from __future__ import annotations

from dataclasses import replace

from evalharness.config.options import SweepOptions
from evalharness.config.plan import RunSpec
from evalharness.preprocess.colour import host_tensor


def tensor_bytes(spec: RunSpec) -> int:
    """Host tensor bytes per sample, estimated from the model input (raw uint8 pixels where the
    model normalizes); a limit_* policy bounds it by its side length (limit_min's long side
    taken as twice)."""
    h, w = spec.variant.model.input_hw or (1024, 1024)
    for stage in spec.stages:
        resize = getattr(stage, "spec", None)
        if stage.kind == "resize" and getattr(resize, "crop", "").startswith("limit"):
            side = resize.limit_side_len or max(h, w)
            h, w = side, side * (2 if resize.crop == "limit_min" else 1)
    return h * w * 3 * host_tensor(spec.variant.placement)[0].itemsize


def fit_chunk(specs: list[RunSpec], opts: SweepOptions) -> tuple[SweepOptions, str]:
    """The options with chunk_size lowered until one pipeline's host tensors for a chunk
    (and as much again for outputs) fit memory_budget, and a note saying so ('' when it
    fits); refused in one line when even one sample does not."""
    per_sample = max(tensor_bytes(s) for s in specs) * 2  # tensors + outputs
    fits = opts.memory_budget // per_sample
    if fits < 1:
        raise ValueError(
            f"one sample's host tensors need about {mb(per_sample)}, over memory_budget="
            f"{mb(opts.memory_budget)}: raise memory_budget (at least "
            f"memory_budget={per_sample})"
        )
    if fits >= opts.chunk_size:
        return opts, ""
    note = (
        f"chunk_size {opts.chunk_size} -> {fits}: a chunk of these inputs (about "
        f"{mb(per_sample / 2)} each) must fit memory_budget={mb(opts.memory_budget)}"
    )
    return replace(opts, chunk_size=int(fits)), note


def mb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"
