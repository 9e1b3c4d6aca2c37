"""Configs a finished run lacks, planned from what the run recorded and evaluated into
RUN_DIR/explain/ondemand/<hash>/ (each a one-config run dir of its own, resumable), or
under another folder (`work_dir`, the commands' --out) when the run dir is read-only.

The plan of such a config is built exactly as the sweep's was (config/runplan.py), from the
run's run_config.yaml narrowed to the one assignment: same model, dataset, calibration
images, threads; so its rows pair with the run's image by image. That holds only while the
dataset is the one the run scored: the first plan checks the dataset hash against the run's
plan.json and refuses (DataChangedError) when the images changed since, before anything is
evaluated. Two commands needing the same config wait for each other (the claim's lock)
instead of one failing as busy.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalharness.analysis.results import RunResults, canonical_for
from evalharness.config.plan import PlanError
from evalharness.config.runplan import RunPlan, plan_recorded
from evalharness.rundir.read import run_choices, run_config, run_settings, run_user_dirs

log = logging.getLogger("evalharness")


class DataChangedError(ValueError):
    """The dataset's files are not the ones the run scored: new rows would not pair."""


@dataclass(frozen=True)
class SampleOutputs:
    """One sample through one config: its host tensor and every output by name."""

    sample_id: str
    model_input: Any
    outputs: dict[str, Any]
    spec: Any  # the config's RunSpec (its variant says how it ran: tiles, precision)


class RunDirConfigs:
    """The ConfigSource (analysis/ondemand.py) of one run dir.

    `work_dir` is where configs evaluated on demand go, a folder per config under
    `work_dir`/ondemand (default RUN_DIR/explain; the commands' --out for a read-only run
    dir). `settings` adds swept settings the run did not sweep (column -> `group.key`:
    `layers --try-exclude` plans the run's int8 config with `precision.exclude` set).
    """

    def __init__(
        self,
        run_dir: Path,
        work_dir: Path | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)  # read when first needed: a wrong dir is named by the
        self._spelling = None  # reader of its results, with what is missing
        self.work_dir = Path(work_dir) if work_dir else self.run_dir / "explain"
        self.settings = dict(settings or {})
        self._data_checked = False

    def _canonical(self, config: dict[str, str]) -> dict[str, str]:
        if self._spelling is None:
            self._spelling = canonical_for(self.run_dir)
        return self._spelling(config)

    def plan(self, config: dict[str, str]) -> RunPlan:
        plan = plan_recorded(
            run_config(self.run_dir), run_choices(self.run_dir), self._canonical(config),
            {**run_settings(self.run_dir), **self.settings}, run_user_dirs(self.run_dir),
        )  # fmt: skip
        if not self._data_checked:
            self.check_dataset(plan.dataset.content_hash)
            self._data_checked = True
        return plan

    def check_dataset(self, now: str) -> None:
        """Refuse when the dataset hashes differently from the run's (images edited, added,
        removed): a config evaluated now would be scored on other images than the run's."""
        path = self.run_dir / "plan.json"
        recorded = json.loads(path.read_text()).get("dataset_hash") if path.exists() else None
        if recorded and recorded != now:
            raise DataChangedError(
                f"the dataset changed since {self.run_dir} was run (hash {recorded[:12]}..., "
                f"now {now[:12]}...): a config evaluated now would be scored on other images; "
                "restore the data, or run the sweep again into a new hydra.run.dir"
            )

    def planned(self, config: dict[str, str]):
        """(the plan, the config's RunSpec in it): the dataset and calibration images come
        with the spec, planned once."""
        plan = self.plan(config)
        wanted = self._canonical(config)
        spec = next(
            s for s in plan.specs if all(s.factor_dict.get(f) == v for f, v in wanted.items())
        )
        return plan, spec

    def spec(self, config: dict[str, str]):
        return self.planned(config)[1]

    def outputs(self, config: dict[str, str], sample_ids: list[str]) -> list[SampleOutputs]:
        """The config's model input and raw outputs (as the sweep's session returns them) for
        a few of the run's samples: what the report draws where the per-image records are
        not enough (image-to-image: both images and their difference, `Task.views`)."""
        from evalharness.preprocess.pipeline import run_pipeline

        plan, spec = self.planned(config)
        by_id = {s.sample_id: s for s in plan.dataset.samples}
        missing = [i for i in sample_ids if i not in by_id]
        if missing:
            raise ValueError(f"not samples of this run: {', '.join(missing[:3])}")
        session = self.session(config)
        out = []
        for sid in sample_ids:
            x = run_pipeline(spec.stages, by_id[sid].path).pixels
            result = session.infer(x[None])
            out.append(SampleOutputs(sid, x, {k: v[0] for k, v in result.items()}, spec))
        return out

    def session(self, config: dict[str, str]):
        """The config's variant built and loaded as the sweep did (a quantizing variant
        calibrates on the plan's calibration images; derived models come from the cache)."""
        from evalharness.engine.loop import load_sessions

        plan, spec = self.planned(config)
        calibration = plan.calibration.samples if plan.calibration is not None else None
        sessions = load_sessions([spec], plan.task, plan.dataset, plan.options.cache_dir,
                                 calibration)  # fmt: skip
        return sessions[spec.variant]

    def problem(self, config: dict[str, str]) -> str | None:
        try:
            self.plan(config)
        except PlanError as e:
            return str(e).split(": ", 1)[-1]
        return None

    def evaluate(self, configs: list[dict[str, str]]) -> RunResults | None:
        from evalharness.runner.run import execute

        out = None
        unique = {json.dumps(c, sort_keys=True): c for c in map(self._canonical, configs)}
        for config in unique.values():
            tag = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
            sub = self.work_dir / "ondemand" / tag
            plan = self.plan(config)  # checks the dataset before anything is evaluated
            if not (sub / "summary.csv").exists():
                log.warning("evaluating missing config on demand: %s", config)
            try:
                execute(plan, sub, wait=True)  # a finished one resumes at once
            except OSError as e:
                raise ValueError(
                    f"cannot evaluate {config} on demand into {sub} ({e.strerror or e}); "
                    "--out DIR evaluates it there"
                ) from None
            res = RunResults.load(sub)
            res = res.only(res.find(config))
            out = res if out is None else out.merged(res)
        return out
