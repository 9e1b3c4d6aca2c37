"""The Python API for notebooks: `evalharness.sweep(...)` and `Results`.

    import evalharness
    res = evalharness.sweep({"sweep": "preproc_ablation", "dataset.limit": 200})
    res.summary                      # one row per config (DataFrame)
    res.explain(b={"resize": "cv2_linear"}).verdict
    res.report()                     # report.html in the run dir

A sweep here is the command line's sweep, in-process: the same config composition (Hydra's
compose API), the same RunPlan, the same runner, the same run dir, so a run dir made here is
one the command-line tools read and vice versa; `Results.explain()` returns the very
Explanation `evalharness explain` prints. Overrides are Hydra's, given as a list of strings,
one string, or a dict (lists become Hydra lists, groups that are not in the defaults --
sweep, case -- get their `+`). This module is the facade: nothing in the package imports it.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from evalharness.analysis.explain import Explanation
from evalharness.paths import CONF_DIR

log = logging.getLogger("evalharness")
if TYPE_CHECKING:  # the layerwise stack (onnx, onnxruntime) loads when layers() is called
    from evalharness.runner.layers import LayersRun

Overrides = list[str] | dict[str, Any] | str | None
_NEEDS_QUOTES = re.compile(r"[\s,\[\]{}()'\"=]")


def _value(v: Any) -> str:
    """A Python value as a Hydra override value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, list | tuple):
        return "[" + ",".join(_value(x) for x in v) + "]"
    text = str(v)
    if _NEEDS_QUOTES.search(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _addable_groups() -> set[str]:
    """Config groups that are not in the defaults list (sweep, case): they take a `+`."""
    import yaml

    from evalharness.config.compose import store_for, user_dirs

    defaults = yaml.safe_load((CONF_DIR / "config.yaml").read_text())["defaults"]
    present = {k for d in defaults if isinstance(d, dict) for k in d}
    return set(store_for(user_dirs()).groups()) - present


def to_overrides(overrides: Overrides) -> list[str]:
    """Hydra override strings from a list, a command-line-like string, or a dict."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        return shlex.split(overrides)
    if isinstance(overrides, dict):
        addable = _addable_groups()
        out = []
        for key, v in overrides.items():
            key = f"+{key}" if key in addable else key
            out.append(f"{key}={_value(v)}")
        return out
    return [str(o) for o in overrides]


def _check(overrides: list[str], dirs: list[str] = ()) -> None:
    """One readable error for a wrong option name, and for a multirun list (no `-m` here)."""
    from evalharness.config.compose import check_group_choices, store_for, user_dirs

    store = store_for(user_dirs(dirs))
    problem = check_group_choices(overrides, store)
    if problem:
        raise ValueError(problem)
    groups = set(store.groups())
    for o in overrides:
        key, _, value = o.partition("=")
        if key.lstrip("+~") in groups and "," in value and "[" not in value:
            raise ValueError(
                f"'{o}' is a multirun list; in one run use a sweep: "
                f"sweep.factors.{key.lstrip('+~')}=[{value}] (with +sweep=NAME or alone)"
            )


def default_run_dir(root: Path = Path("results")) -> Path:
    """results/<date>_<time>/ like the command line (a suffix if that second is taken)."""
    base = root / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    path, k = base, 1
    while path.exists():
        path, k = Path(f"{base}_{k}"), k + 1
    return path


def sweep(overrides: Overrides = None, run_dir: str | Path | None = None) -> Results:
    """Run a config or a sweep in this process and return its results.

    `run_dir` (or a `hydra.run.dir=` override) names the run dir; re-using one resumes it.
    Raises ValueError / FileNotFoundError for what the command line reports as `error:`.
    """
    from evalharness.config.compose import searchpath_dirs
    from evalharness.config.runplan import plan_for
    from evalharness.runner.finish import finish
    from evalharness.runner.run import execute

    args = to_overrides(overrides)
    given = [a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")]
    dirs = searchpath_dirs(args)  # hydra.searchpath=[file://DIR]: the user's config dirs
    args = [a for a in args if not a.startswith("hydra.")]
    _check(args, dirs)
    run_dir = Path(run_dir or (given[-1] if given else default_run_dir()))
    plan = plan_for(args, dirs)
    execute(plan, run_dir)
    done = finish(plan, run_dir)
    if done.tracking_error:  # the results are complete: hand them over, say what failed
        log.warning("%s; the results are complete in %s", done.tracking_error, run_dir)
    return Results(run_dir)


class Results:
    """A finished run dir: tables as DataFrames, and the tools as methods.

    Its files are checked against the run's records.json first: an edited dir raises
    EditedRunError (a ValueError) unless `trust_edited=True`, which reads it and logs each
    file that was not verified."""

    def __init__(self, run_dir: str | Path, trust_edited: bool = False) -> None:
        from evalharness.analysis.results import verify_run

        self.run_dir = Path(run_dir)
        self.trust_edited = trust_edited
        for name in ("summary.csv", "predictions.parquet", "run_config.yaml"):
            if not (self.run_dir / name).exists():
                raise FileNotFoundError(
                    f"{self.run_dir / name} not found: is this a finished run dir?"
                )
        with self._trust():
            verify_run(self.run_dir)

    @classmethod
    def load(cls, run_dir: str | Path, trust_edited: bool = False) -> Results:
        return cls(run_dir, trust_edited)

    def _trust(self):
        from evalharness.rundir.records import trusting_edits

        return trusting_edits(self.trust_edited)

    @cached_property
    def summary(self) -> pd.DataFrame:
        """summary.csv: one row per config; factor columns as strings."""
        from evalharness.rundir.summary import read_summary

        return read_summary(self.run_dir / "summary.csv")

    @cached_property
    def predictions(self) -> pd.DataFrame:
        """predictions.parquet: one row per (sample, config)."""
        return pd.read_parquet(self.run_dir / "predictions.parquet")

    @property
    def metric(self) -> str:
        from evalharness.analysis.results import task_of_run

        return task_of_run(self.run_dir).metric

    @property
    def findings(self) -> str:
        """The findings block (findings.md; computed and written when missing)."""
        path = self.run_dir / "findings.md"
        if not path.exists():
            from evalharness.analysis.findings import write_findings
            from evalharness.runner.ondemand import RunDirConfigs

            with self._trust():
                return write_findings(self.run_dir, RunDirConfigs(self.run_dir))
        return path.read_text()

    def explain(
        self,
        b: dict[str, Any] | None = None,
        a: dict[str, Any] | None = None,
        target: float | None = None,
        n_boot: int = 1000,
        margin: float | None = None,
    ) -> Explanation:
        """Effects, pairs and, with `b`, the Shapley split of metric(B) - metric(A).

        A is the model card's reference with `a`'s factors changed; B is A with `b`'s.
        Coalition configs the run lacks are evaluated on demand (into explain/ondemand/).
        """
        from evalharness.analysis.explain import explain
        from evalharness.runner.ondemand import RunDirConfigs
        from evalharness.stats.paired import check_resamples

        check_resamples(n_boot)
        with self._trust():
            return explain(self.run_dir, RunDirConfigs(self.run_dir), a, b, target, n_boot, margin)

    def layers(
        self,
        b: dict[str, Any],
        a: dict[str, Any] | None = None,
        n: int = 64,
        threshold: float = 0.05,
        try_exclude: int = 0,
    ) -> LayersRun:
        """Where A and B part, layer by layer, on the images that flip between them (the
        `evalharness layers` command; `.result` is the LayerDivergence, `.verdict` its line).

        A is the model card's reference with `a`'s factors changed; B is A with `b`'s.
        `try_exclude=K` re-quantizes the int8 side with the K worst layers in float and
        evaluates it on the whole dataset (`.exclude`). Files go to RUN_DIR/layers/.
        """
        from evalharness.runner.layers import run_layers

        return run_layers(self.run_dir, a, b, n=n, threshold=threshold, try_exclude=try_exclude)

    def compare(self, other: Results | str | Path) -> pd.DataFrame:
        """Config by config against another run dir or CSV (B = other); notes in .attrs."""
        from evalharness.analysis.compare import compare

        other_path = other.run_dir if isinstance(other, Results) else Path(other)
        with self._trust():
            comparison = compare(self.run_dir, other_path)
        comparison.table.attrs["notes"] = comparison.notes
        return comparison.table

    def report(
        self,
        path: str | Path | None = None,
        b: dict[str, Any] | None = None,
        n_boot: int = 1000,
        a: dict[str, Any] | None = None,
        other: Results | str | Path | None = None,
    ) -> Path:
        """Write report.html / report.md in the run dir for A (the reference with `a`
        changed) and B (A with `b` changed; with `other`, in that run); with `path`, copy the
        page there (with report_assets/ beside it: the gallery's thumbnails are files)."""
        from evalharness.report.build import write_report
        from evalharness.runner.ondemand import RunDirConfigs
        from evalharness.stats.paired import check_resamples

        a = {k: str(v) for k, v in (a or {}).items()}
        b = {k: str(v) for k, v in (b or {}).items()}
        check_resamples(n_boot)
        other_dir = other.run_dir if isinstance(other, Results) else other
        other_dir = Path(other_dir) if other_dir is not None else None
        other_configs = RunDirConfigs(other_dir) if other_dir is not None else None
        with self._trust():
            html = write_report(self.run_dir, RunDirConfigs(self.run_dir), b, n_boot, a_over=a,
                                other=other_dir, other_configs=other_configs)  # fmt: skip
        if path is None:
            return html
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(html, path)
        assets = html.parent / "report_assets"
        if assets.is_dir() and assets.resolve() != (path.parent / "report_assets").resolve():
            shutil.copytree(assets, path.parent / "report_assets", dirs_exist_ok=True)
        return path

    def __repr__(self) -> str:
        return f"Results({str(self.run_dir)!r}: {len(self.summary)} configs)"

    def _repr_markdown_(self) -> str:
        return self.findings
