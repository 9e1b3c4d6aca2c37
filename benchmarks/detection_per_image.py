"""Milliseconds per image of the detection task, stage by stage, on one config.

    python benchmarks/detection_per_image.py                 # YOLOX-Nano, coco_mini_val2017
    python benchmarks/detection_per_image.py model=tiny_det dataset=demo_det

Runs the model card's reference config in-process (threads=1, one engine worker, so the
stage seconds are wall seconds of one core), then times, on the stored predictions, what
the summary adds: pycocotools' full evaluation (the point estimate) and the bootstrap
(the engine's 1000 resamples through the numpy accumulation). `postprocess` is the task's
predict: head decode, threshold, NMS, the way back to source pixels and pycocotools'
per-image matching; the matching alone is timed again on the stored boxes.

Arguments are Hydra overrides.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from evalharness.config.compose import compose_config
from evalharness.config.plan import explicit_factors
from evalharness.data.dataset import load_dataset
from evalharness.engine.tables import SUMMARY_BOOTSTRAP
from evalharness.runner.run import run
from evalharness.stats.paired import bootstrap_indices
from evalharness.tasks.base import get_task
from evalharness.tasks.detection.coco import match_images
from evalharness.tasks.detection.task import stored_detections

STAGES = ("decode", "resize", "colour", "normalize", "infer", "postprocess")


def main(overrides: list[str]) -> None:
    overrides = overrides or ["model=yolox_nano", "dataset=coco_mini_val2017"]
    overrides = [*overrides, "progress=false", "threads=1", "workers=1"]
    cfg, choices = compose_config(overrides)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        t0 = time.perf_counter()
        run(cfg, out, choices, quiet=True, explicit=explicit_factors(overrides))
        wall = time.perf_counter() - t0
        stats = json.loads((out / "stats.json").read_text())
        preds = pd.read_parquet(out / "predictions.parquet")
    n = stats["n_samples"]
    rows = {s: stats.get(f"{s}_seconds", float("nan")) / n * 1000 for s in STAGES}
    ds = load_dataset(cfg.dataset)
    task = get_task("detection")
    preds = preds.sort_values("sample_index").reset_index(drop=True)
    by_index = {s.index: s for s in ds.samples}
    targets = [by_index[int(i)].target for i in preds.sample_index]
    dets = [stored_detections(r) for r in preds.itertuples(index=False)]
    t0 = time.perf_counter()
    for t, d in zip(targets, dets, strict=True):  # one image per call, as a batch of 1 does
        match_images([t], [d], len(ds.classes))
    rows["  of which matching"] = (time.perf_counter() - t0) / n * 1000
    t0 = time.perf_counter()
    task.library_stats(preds, ds)
    rows["metric: pycocotools point"] = (time.perf_counter() - t0) / n * 1000
    rec = task.records(preds, ds)
    idx = bootstrap_indices(n, SUMMARY_BOOTSTRAP)
    t0 = time.perf_counter()
    task.value(rec, idx)
    rows[f"metric: {SUMMARY_BOOTSTRAP} resamples"] = (time.perf_counter() - t0) / n * 1000
    table = pd.Series(rows, name="ms/image").round(2)
    print(table.to_string())
    print(f"{n} images; whole run {wall:.1f} s ({wall / n * 1000:.0f} ms/image with start-up "
          f"and summary); mAP {np.round(task.point(rec), 2)}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
