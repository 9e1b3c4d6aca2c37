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
    """The ConfigSource (analysis/ondemand.py) of one run dir.

    `settings` adds swept settings the run did not sweep (column -> `group.key`: `layers
    --try-exclude` plans the run's int8 config with `precision.exclude` set), `folder` is
    where the configs are evaluated (under the run dir).
    """

    def __init__(
        self,
        run_dir: Path,
        settings: dict[str, str] | None = None,
        folder: str = "explain/ondemand",
    ) -> None:
        self.run_dir = Path(run_dir)  # read when first needed: a wrong dir is named by the
        self._spelling = None  # reader of its results, with what is missing
        self.settings = dict(settings or {})
        self.folder = folder

    def _canonical(self, config: dict[str, str]) -> dict[str, str]:
        if self._spelling is None:
            self._spelling = canonical_for(self.run_dir)
        return self._spelling(config)

    def plan(self, config: dict[str, str]) -> RunPlan:
        return plan_recorded(
            run_config(self.run_dir), run_choices(self.run_dir), self._canonical(config),
            {**run_settings(self.run_dir), **self.settings}, run_user_dirs(self.run_dir),
        )  # fmt: skip

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
            sub = self.run_dir / self.folder / tag
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
