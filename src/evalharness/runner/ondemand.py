"""Configs a finished run lacks, planned from what the run recorded and evaluated into
RUN_DIR/explain/ondemand/<hash>/ (each a one-config run dir of its own, resumable).

The plan of such a config is built exactly as the sweep's was (config/runplan.py), from the
run's run_config.yaml narrowed to the one assignment: same model, dataset, calibration
images, threads; so its rows pair with the run's image by image.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from evalharness.analysis.results import RunResults, canonical_for
from evalharness.config.plan import PlanError
from evalharness.config.runplan import RunPlan, plan_recorded
from evalharness.rundir.read import run_choices, run_config, run_settings, run_user_dirs

log = logging.getLogger("evalharness")


class RunDirConfigs:
    """The ConfigSource (analysis/ondemand.py) of one run dir."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)  # read when first needed: a wrong dir is named by the
        self._spelling = None  # reader of its results, with what is missing

    def _canonical(self, config: dict[str, str]) -> dict[str, str]:
        if self._spelling is None:
            self._spelling = canonical_for(self.run_dir)
        return self._spelling(config)

    def plan(self, config: dict[str, str]) -> RunPlan:
        return plan_recorded(
            run_config(self.run_dir), run_choices(self.run_dir), self._canonical(config),
            run_settings(self.run_dir), run_user_dirs(self.run_dir),
        )  # fmt: skip

    def spec(self, config: dict[str, str]):
        return self._spec_in(self.plan(config), config)

    def _spec_in(self, plan: RunPlan, config: dict[str, str]):
        wanted = self._canonical(config)
        return next(
            s for s in plan.specs if all(s.factor_dict.get(f) == v for f, v in wanted.items())
        )

    def session(self, config: dict[str, str]):
        """The config's variant built and loaded as the sweep did (a quantizing variant
        calibrates on the plan's calibration images; derived models come from the cache)."""
        from evalharness.engine.loop import load_sessions

        plan = self.plan(config)
        spec = self._spec_in(plan, config)
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
            sub = self.run_dir / "explain" / "ondemand" / tag
            log.warning("evaluating missing config on demand: %s", config)
            execute(self.plan(config), sub)
            res = RunResults.load(sub)
            found = res.find(config)
            res = RunResults(
                res.summary[res.summary.config_id == found].reset_index(drop=True),
                res.task,
                {found: res.records[found]},
                res.sample_ids,
                res.labels,
            )
            out = res if out is None else out.merged(res)
        return out
