"""OpenVINO PrePostProcessor fronts: what a compiled model does to its input before the graph.

Two factor values build one: the normalization placement `ov_ppp` (uint8 NHWC in, convert,
mean, scale, NCHW inside the model) and the `ov_ppp_*` resizes (the compiled model resamples
to its input size). The OpenVINO backend adds them to the model it compiles; the ov_ppp
resizer runs the same front on the host for parity checks. Both import OpenVINO inside the
functions, so this module is light.
"""

from __future__ import annotations

import os

# PrePostProcessor ResizeAlgorithm members by interpolation name.
PPP_RESIZE = {
    "linear": "RESIZE_LINEAR",
    "cubic": "RESIZE_CUBIC",
    "nearest": "RESIZE_NEAREST",
    "bilinear_pillow": "RESIZE_BILINEAR_PILLOW",
    "bicubic_pillow": "RESIZE_BICUBIC_PILLOW",
}


def add_ppp(model, placement: str, mean, std, resize: str | None = None):
    """The input side of a PrePostProcessor: what the compiled model does before the graph.

    placement ov_ppp: uint8 NHWC in; convert to f32, (resize), mean, scale, NCHW.
    resize (a `ppp_resize` variant option, set by an `ov_ppp_*` resize value): the input's
    height and width become dynamic and the compiled model resamples to the graph's input
    size, so the host sends the decoded (cropped/padded) image as it is.
    """
    import openvino as ov
    from openvino.preprocess import PrePostProcessor, ResizeAlgorithm

    ppp = PrePostProcessor(model)
    inp = ppp.input()
    if placement == "ov_ppp":
        inp.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    else:
        inp.tensor().set_layout(ov.Layout("NCHW"))
    inp.model().set_layout(ov.Layout("NCHW"))
    if resize:
        inp.tensor().set_spatial_dynamic_shape()
    steps = inp.preprocess()
    if placement == "ov_ppp":
        steps.convert_element_type(ov.Type.f32)
    if resize:
        steps.resize(getattr(ResizeAlgorithm, PPP_RESIZE[resize]))
    if placement == "ov_ppp":
        steps.mean([m * 255.0 for m in mean]).scale([s * 255.0 for s in std])
    return ppp.build()


def cpu_streams(threads: int) -> int:
    """CPU streams so that the engine's worker threads infer side by side, each stream with
    `threads` threads. With one stream the CPU plugin runs one request at a time: two
    workers' batches waited for each other (demo model, 2 threads: 1.03x; 2 streams: 2.05x).
    Each stream computes exactly what one stream of `threads` threads does (bit-equal
    logits, tests/test_backends.py), so results do not depend on it."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, threads))
