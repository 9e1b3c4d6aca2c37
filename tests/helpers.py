"""Small builders for test datasets made from the demo files plus deliberately bad ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from evalharness.paths import PROJECT_ROOT

DEMO = PROJECT_ROOT / "datasets" / "demo"


def demo_subset(dest: Path, n: int, extra: dict[str, bytes] | None = None) -> list[str]:
    """Copy the first n demo files (+ extra named files with label 0) into a manifest set.

    Returns the Hydra overrides that point the app at it.
    """
    manifest = pd.read_csv(DEMO / "manifest.csv", dtype={"sample_id": str}).head(n)
    (dest / "images").mkdir(parents=True, exist_ok=True)
    for p in manifest.path:
        shutil.copy(DEMO / p, dest / p)
    rows = manifest[["sample_id", "path", "label"]].to_dict("records")
    for name, data in (extra or {}).items():
        (dest / "images" / name).write_bytes(data)
        rows.append({"sample_id": f"bad_{name}", "path": f"images/{name}", "label": 0})
    pd.DataFrame(rows).to_csv(dest / "manifest.csv", index=False)
    shutil.copy(DEMO / "classes.txt", dest / "classes.txt")
    return [f"dataset.root={dest}"]


def rerecord(run_dir: Path, *names: str) -> None:
    """Enter files as the run's own in records.json: a test that edits a run-dir file to
    stand for another run (another library version, an old run dir) says so here."""
    from evalharness.rundir import records

    records.add(run_dir, {n: records.entry_of_file(run_dir / n) for n in names})
