"""One config: the engine against the loop a user would otherwise write (timm-style
`torch.utils.data.DataLoader` with worker processes doing decode + transforms, the model in
the main process), side by side in one run, same preprocessing code, same backend threads.

    python benchmarks/dataloader_vs_engine.py model=efficientnet_lite0 dataset=imagenet_val_1300 \\
        backend=onnxruntime

Prints images/s of both and `engine/dataloader = X` (> 1: the engine is faster).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from evalharness.config.compose import prepare_run
from evalharness.engine.infer import infer_batched
from evalharness.engine.loop import load_sessions, run_sweep
from evalharness.preprocess.pipeline import run_pipeline
from evalharness.runner.run import sweep_options


class Images(TorchDataset):
    """What a validate script's dataset does: decode + transforms per item, in a worker."""

    def __init__(self, samples, stages) -> None:
        self.samples, self.stages = samples, stages

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> np.ndarray:
        return run_pipeline(self.stages, self.samples[i].path).pixels


def main(overrides: list[str]) -> None:
    cfg, specs, dataset, task = prepare_run(["progress=false", *overrides])
    spec = next(s for s in specs if not s.is_reference)  # the config asked for
    cores = len(os.sched_getaffinity(0))
    session = load_sessions([spec], task, dataset, str(cfg.cache_dir))[spec.variant]
    batch = int(cfg.model.get("batch_size") or cfg.batch_size)
    loader = DataLoader(Images(dataset.samples, spec.stages), batch_size=batch,
                        num_workers=cores, collate_fn=np.stack)  # fmt: skip
    torch.set_num_threads(int(cfg.threads))
    t0 = time.perf_counter()
    n = 0
    for x in loader:
        infer_batched(session, x, batch)
        n += len(x)
    dl = time.perf_counter() - t0
    opts = sweep_options(cfg)
    one = [spec]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stats = run_sweep(one, dataset, Path(tmp), opts, task)
        engine = time.perf_counter() - t0
    print(f"one config ({spec.variant.backend}, {dataset.name}, {n} images), threads="
          f"{cfg.threads}, DataLoader workers={cores}, engine workers={opts.workers}")  # fmt: skip
    print(f"dataloader {n / dl:8.1f} images/s ({dl:.1f} s)")
    print(f"engine     {n / engine:8.1f} images/s ({engine:.1f} s, "
          f"cpu {stats['cpu_utilisation']:.2f} cores)")  # fmt: skip
    print(f"engine/dataloader = {dl / engine:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
