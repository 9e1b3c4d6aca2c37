"""A sweep run as one process vs as 2 shards through real Hydra launchers, side by side.

Each way runs the same command line (`python -m evalharness ...`) end to end, start-up
included, as a user runs it; the shard ways add `python -m evalharness.runner.merge`. The merged
predictions must equal the single run's, or the script stops.

- single: one process, the whole sweep.
- joblib: `-m hydra/launcher=joblib hydra.launcher.n_jobs=2 shard.count=2 shard.index=0,1`.
- ray:    the same through `hydra/launcher=ray_shards`, on a Ray head that
          scripts/ray_on_loopback.sh starts in a loopback-only namespace (its start-up,
          about 6 s, is timed too); left out where that cannot run.

    python benchmarks/shards_vs_single.py                   # demo, preproc_ablation (72 x 800)
    python benchmarks/shards_vs_single.py dataset.limit=200

Arguments are Hydra overrides added to every run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from evalharness.paths import PROJECT_ROOT

SHARDS = ["shard.count=2", "shard.index=0,1"]
LOOPBACK = PROJECT_ROOT / "scripts" / "ray_on_loopback.sh"


def timed(cmd: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{(r.stdout + r.stderr)[-2000:]}")
    return time.perf_counter() - t0


def merged_seconds(tmp: Path, name: str, launch: list[str], env=None) -> tuple[float, float]:
    """(seconds for the shards, seconds for the merge); checks the merge equals single."""
    sweep_dir = tmp / name
    shards = timed([*launch, *SHARDS, f"hydra.sweep.dir={sweep_dir}"], env)
    merge = timed(
        [sys.executable, "-m", "evalharness.runner.merge", str(tmp / f"{name}-merged")]
        + [str(sweep_dir / "0"), str(sweep_dir / "1")]
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp / "single" / "predictions.parquet"),
        pd.read_parquet(tmp / f"{name}-merged" / "predictions.parquet"),
    )
    return shards, merge


def ray_available() -> str | None:
    try:
        import hydra_plugins.hydra_ray_launcher  # noqa: F401
        import ray  # noqa: F401
    except ImportError:
        return "ray or hydra-ray-launcher not installed (pip install -e '.[ray]')"
    check = subprocess.run([str(LOOPBACK), "--check"], capture_output=True, text=True)
    return None if check.returncode == 0 else check.stdout.strip() or check.stderr.strip()


def main(overrides: list[str]) -> None:
    base = ["+sweep=preproc_ablation", "progress=false", *overrides]
    app = [sys.executable, "-m", "evalharness"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        single = timed([*app, *base, f"hydra.run.dir={tmp / 'single'}"])
        n = len(pd.read_parquet(tmp / "single" / "predictions.parquet"))
        rows.append(("single process", single, 0.0))
        joblib = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
        rows.append(("2 shards, joblib", *merged_seconds(tmp, "joblib", [*app, *joblib, *base])))
        why_not = ray_available()
        if why_not is None:
            env = {**os.environ, "PYTHON": sys.executable}
            launch = [str(LOOPBACK), "-m", "hydra/launcher=ray_shards", *base]
            rows.append(("2 shards, ray", *merged_seconds(tmp, "ray", launch, env)))
    print(f"{n} predictions per run; merged predictions equal the single run's in every way")
    print(f"{'way':<18} {'shards s':>9} {'merge s':>8} {'total s':>8} {'single/total':>13}")
    for name, run_s, merge_s in rows:
        total = run_s + merge_s
        print(f"{name:<18} {run_s:9.1f} {merge_s:8.1f} {total:8.1f} {single / total:13.2f}")
    if why_not:
        print(f"ray: left out ({why_not})")


if __name__ == "__main__":
    main(sys.argv[1:])
