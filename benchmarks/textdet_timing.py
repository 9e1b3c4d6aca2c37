"""Time per image of text detection, stage by stage: decode, resize (the limit policy), colour,
normalize, inference, DB post-processing, the ICDAR 2015 matching.

    python benchmarks/textdet_timing.py                                   # PP-OCRv6, 50 images
    python benchmarks/textdet_timing.py model=ppocr_v4_det dataset.limit=100 threads=2
    python benchmarks/textdet_timing.py resize=limit_max resize.limit_side_len=960

Arguments are Hydra overrides (default: model=ppocr_v6_det dataset=icdar2015_test
dataset.limit=50). Every config the overrides resolve to is timed (the model card's reference
included), with the same stage code and backend session the engine uses, one image at a time;
the medians per image are printed, in milliseconds.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from evalharness.backends.base import BACKENDS
from evalharness.config.compose import resolve
from evalharness.tasks.base import get_task
from evalharness.tasks.text_detection.db import detect
from evalharness.tasks.text_detection.protocol import match_image
from evalharness.tasks.text_detection.task import _words

STAGES = ("decode", "resize", "colour", "normalize", "infer", "db", "metric")
DEFAULTS = {"model": "ppocr_v6_det", "dataset": "icdar2015_test", "dataset.limit": "50"}


def overrides(argv: list[str]) -> list[str]:
    given = {a.split("=", 1)[0] for a in argv}
    return ["progress=false", *(f"{k}={v}" for k, v in DEFAULTS.items() if k not in given), *argv]


def time_config(spec, session, task, samples) -> dict[str, float]:
    times: dict[str, list[float]] = {}

    def lap(name: str, t0: float) -> float:
        t1 = time.perf_counter()
        times.setdefault(name, []).append(t1 - t0)
        return t1

    for s in samples:
        t = time.perf_counter()
        x = s.path
        for stage in spec.stages:
            x = stage(x)
            t = lap(stage.kind, t)
        raw = session.infer(x.pixels[None])
        t = lap("infer", t)
        prob = task.read_outputs(raw, spec.variant.model)["prob_map"][0, 0]
        det = detect(prob, x.geometry, task.params)
        t = lap("db", t)
        match_image(*_words(s.target), det.polygons)
        lap("metric", t)
    out: dict = {k: 1000 * float(np.median(v)) for k, v in times.items()}
    out["total"] = sum(out.values())
    out["input"] = "x".join(map(str, x.pixels.shape[1:]))
    return out


def main(argv: list[str]) -> None:
    cfg, specs, dataset = resolve(overrides(argv))
    task = get_task(dataset.task, specs[0].variant.model)
    samples = [s for s in dataset.samples if s.problem is None]
    print(f"{cfg.model.name} on {dataset.name}: {len(samples)} images, threads={cfg.threads}")
    print("ms per image (median): " + ", ".join(STAGES) + " | total")
    for spec in specs:
        session = BACKENDS.get(spec.variant.backend)().load(spec.variant, str(cfg.cache_dir))
        r = time_config(spec, session, task, samples)
        label = " ".join(v for k, v in spec.factors if k in ("resize", "limit_side_len"))
        label = f"{label} {'(ref)' if spec.is_reference else ''} input {r['input']} (last)"
        print(f"{label}: " + ", ".join(f"{r[k]:.1f}" for k in STAGES) + f" | {r['total']:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
