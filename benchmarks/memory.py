"""Peak resident memory of whole sweeps, each in its own process (threads included: the engine
uses threads, not worker processes, so the process's peak RSS is everything).

Cases (all on the demo model):
- samples 1x / 10x:   preproc_ablation (72 configs) on the 800 demo images, then on 8,000
                      (the demo files copied ten times under new names);
- configs 1x / 50x:   64 samples, 72 configs vs 3,600 (CONFIGS_50X), and the 4,800-config
                      plan (big_4800);
- 88-megapixel images: 8 generated 9,400 x 9,400 JPEGs, 2 configs, chunk_size 1 vs 8.

    python benchmarks/memory.py                 # every case (the 4,800 one takes a while)
    python benchmarks/memory.py samples 88mp    # some cases

Prints one line per case: peak RSS in GB and wall seconds, and the ratios that matter.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from evalharness.paths import PROJECT_ROOT

DEMO = PROJECT_ROOT / "datasets" / "demo"
# 50 x 72 = 3,600 configs: 3 backends x 10 decoders x 20 resizes x 2 colours x 3 mean/std.
CONFIGS_50X = [
    "+sweep=big_4800",
    "sweep.factors.meanstd=[card,half,imagenet]",
]


def peak_rss(args: list[str]) -> tuple[float, float]:
    """(peak RSS in GB, wall seconds) of `python -m evalharness *args` in a fresh process."""
    code = (
        "import resource, subprocess, sys, time; t = time.time();"
        "r = subprocess.run([sys.executable, '-m', 'evalharness', *sys.argv[1:]]);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.time() - t,"
        " r.returncode)"
    )
    out = subprocess.run([sys.executable, "-c", code, *args, "progress=false"],
                         capture_output=True, text=True, cwd=PROJECT_ROOT)  # fmt: skip
    last = out.stdout.strip().splitlines()[-1].split()
    if last[2] != "0":
        raise RuntimeError(f"sweep failed: {out.stderr[-2000:]}")
    return int(last[0]) / 1e6, float(last[1])


def ten_x_demo(dest: Path) -> list[str]:
    """The 800 demo files, copied 10 times under new names: 8,000 samples."""
    m = pd.read_csv(DEMO / "manifest.csv", dtype=str)
    rows = []
    (dest / "images").mkdir(parents=True)
    for k in range(10):
        for r in m.itertuples():
            name = f"images/{k}_{Path(r.path).name}"
            shutil.copy(DEMO / r.path, dest / name)
            rows.append({"sample_id": f"{k}_{r.sample_id}", "path": name, "label": r.label})
    pd.DataFrame(rows).to_csv(dest / "manifest.csv", index=False)
    shutil.copy(DEMO / "classes.txt", dest / "classes.txt")
    return [f"dataset.root={dest}"]


def huge_images(dest: Path, n: int = 8, side: int = 9400) -> list[str]:
    """n JPEGs of side x side (88 megapixels: under the 89.5 Mpx bomb limit)."""
    (dest / "images").mkdir(parents=True)
    rows = []
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 255, (side // 8, side, 3), dtype=np.uint8)
    img = Image.fromarray(np.tile(tile, (8, 1, 1)))
    for k in range(n):
        img.save(dest / "images" / f"{k}.jpg", quality=85)
        rows.append({"path": f"images/{k}.jpg", "label": k % 10})
    pd.DataFrame(rows).to_csv(dest / "manifest.csv", index=False)
    shutil.copy(DEMO / "classes.txt", dest / "classes.txt")
    return [f"dataset.root={dest}"]


def main(cases: list[str]) -> None:
    cases = cases or ["samples", "configs", "4800", "88mp"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def run(label: str, args: list[str]) -> float:
            folder = tmp / "".join(c if c.isalnum() else "_" for c in label)
            rss, wall = peak_rss([*args, f"hydra.run.dir={folder}"])
            print(f"{label:28s} peak RSS {rss:6.3f} GB   wall {wall:7.1f} s", flush=True)
            return rss

        if "samples" in cases:
            a = run("samples_1x (72 x 800)", ["+sweep=preproc_ablation"])
            b = run("samples_10x (72 x 8000)", ["+sweep=preproc_ablation",
                                                *ten_x_demo(tmp / "ten")])  # fmt: skip
            print(f"rss(10x samples)/rss(1x) = {b / a:.3f}")
        if "configs" in cases:
            a = run("configs_1x (72 x 64)", ["+sweep=preproc_ablation", "dataset.limit=64"])
            b = run("configs_50x (3600 x 64)", [*CONFIGS_50X, "dataset.limit=64"])
            print(f"rss(50x configs)/rss(1x) = {b / a:.3f}")
        if "4800" in cases:
            rss = run("configs_4800 (4800 x 64)", ["+sweep=big_4800", "dataset.limit=64"])
            print(f"peak RSS 4800 configs x 64 samples = {rss:.3f} GB (goal < 3 GB)")
        if "88mp" in cases:
            big = huge_images(tmp / "huge")
            two = ["+sweep=preproc_ablation", "sweep.factors.backend=[torch]",
                   "sweep.factors.decoder=[pil]", "sweep.factors.resize=[pil_bilinear,cv2_area]",
                   "sweep.factors.norm=[host]", *big]  # fmt: skip
            a = run("88mp chunk_size=1", [*two, "chunk_size=1"])
            b = run("88mp chunk_size=8", [*two, "chunk_size=8"])
            print(f"rss(88 Mpx, chunk 8)/rss(chunk 1) = {b / a:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
