"""`evalharness [group=option ...] [+sweep=NAME]`: evaluate a config or a sweep (Hydra's app).

Hydra parses the overrides and composes the config (and runs launchers for `-m`); the job
hands the composed config to config/ (one RunPlan), the runner executes it, and this module
prints: the plan line first, then the table, the findings, the report and tracking lines.
A user's mistake -- before or after composition -- is one `error:` line and exit code 2,
and a refused command leaves no folder behind.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Folders on the way to the run dir that did not exist before this command: Hydra creates
# the run dir before the job starts, so a refused command removes them again (if empty).
_NEW_DIRS: list[Path] = []
DEFAULT_RUN_PARENT = "results"  # hydra.run.dir's default is results/<time> (conf/config.yaml)
_DEFAULT_PARENT: list[Path | None] = [None]  # set when the command did not name hydra.run.dir
_APP_STARTED: list[bool] = [False]  # composition is over once the job function runs
_USER_DIRS: list[str] = []  # --config-dir / hydra.searchpath DIRs, then EVALHARNESS_CONFIG_PATH


def config_dir_args(argv: list[str]) -> list[str]:
    """The `--config-dir DIR` / `-cd DIR` / `--config-dir=DIR` values (Hydra's own flag)."""
    out = []
    for i, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif arg.startswith("--config-dir="):
            out.append(arg.split("=", 1)[1])
    return out


def without_config_dirs(argv: list[str]) -> list[str]:
    """argv less its `--config-dir DIR` options (to find the first real word)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--config-dir", "-cd"):
            skip = True
        elif not arg.startswith("--config-dir="):
            out.append(arg)
    return out


def missing_run_dirs(argv: list[str], cwd: Path) -> list[Path]:
    """hydra.run.dir (or the default results/) and its parents that do not exist yet."""
    given = [a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith("hydra.run.dir=")]
    path = Path(given[-1]) if given else Path(DEFAULT_RUN_PARENT)
    path = path if path.is_absolute() else cwd / path
    out = []
    while not path.exists() and path != path.parent:
        out.append(path)
        path = path.parent
    return out  # deepest first


def remove_if_empty(dirs: list[Path]) -> None:
    for d in dirs:  # deepest first: a parent empties once its new child is gone
        try:
            d.rmdir()
        except OSError:
            pass  # not empty (or already gone): something is there, leave it


def user_errors() -> tuple[type[BaseException], ...]:
    """Mistakes in what the user asked for: one line on stderr, exit code 2, no traceback
    (EVALHARNESS_DEBUG=1 re-raises them for a full trace)."""
    from evalharness.config.plan import PlanError
    from evalharness.optional import MissingRuntimeError
    from evalharness.registry import UnknownNameError
    from evalharness.rundir.claim import PlanMismatchError, RunDirBusyError

    return (FileNotFoundError, PlanError, PlanMismatchError, RunDirBusyError, UnknownNameError,
            MissingRuntimeError, ValueError)  # fmt: skip


def job(cfg) -> None:
    """The Hydra job: plan, run, print; a user's mistake is one line, exit 2."""
    from hydra.core.hydra_config import HydraConfig

    _APP_STARTED[0] = True
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir).absolute()
    created = list(_NEW_DIRS)
    if run_dir not in created and run_dir.parent.absolute() == _DEFAULT_PARENT[0]:
        created.insert(0, run_dir)  # the default results/<time>: made by this command
    try:
        run_and_print(cfg, dict(hc.runtime.choices), list(hc.overrides.task), run_dir)
    except SystemExit as e:
        if e.code:
            remove_if_empty(created)
        raise


def run_and_print(cfg, choices: dict, overrides: list[str], run_dir: Path) -> None:
    from evalharness.config.compose import from_hydra
    from evalharness.config.runplan import build_plan
    from evalharness.optional import error_line

    try:
        plan = build_plan(from_hydra(cfg, choices, overrides, _USER_DIRS))
        print(f"{len(plan.specs)} config(s) x {len(plan.dataset)} samples -> {run_dir}")
        for note in plan.notes:
            print(note, file=sys.stderr)
        from evalharness.runner.finish import finish
        from evalharness.runner.run import execute

        outcome = execute(plan, run_dir)
    except user_errors() as e:
        _refuse(f"error: {error_line(e, 1000)}")
    except OSError as e:  # a full disk, a read-only run dir: what and where, not a trace
        where = f" ({e.filename})" if e.filename else ""
        _refuse(f"error: {e.strerror or error_line(e)}{where}")
    print_outcome(plan, outcome)
    try:
        done = finish(plan, run_dir)
    except user_errors() as e:  # the tables are written; what came after is said in one line
        _refuse(f"error: {error_line(e, 1000)}")
    print(done.findings, end="")
    print_finished(done, run_dir)


def print_finished(done, run_dir: Path) -> None:
    """The report and tracking lines; a tracker that failed after the sweep is one error
    line and exit code 3 (TRACKING_FAILED): the results are complete in the run dir."""
    from evalharness.tracking import TRACKING_FAILED

    if done.report:
        print(f"report: {done.report}")
    if done.tracking:
        print(done.tracking)
    if done.tracking_error:
        print(
            f"error: {done.tracking_error}; the results are complete in {run_dir} (the same "
            "command with the same hydra.run.dir logs them again, recomputing nothing)",
            file=sys.stderr,
        )
        sys.exit(TRACKING_FAILED)


def _refuse(line: str) -> None:
    if os.environ.get("EVALHARNESS_DEBUG"):
        raise
    print(line, file=sys.stderr)
    sys.exit(2)


def print_outcome(plan, outcome) -> None:
    import pandas as pd

    from evalharness.commands.tables import terminal_table

    summary, stats = outcome.summary, outcome.stats
    print(terminal_table(summary, plan.task))
    n_err = int(summary.n_errors.sum())
    if n_err:
        errors = pd.read_csv(outcome.run_dir / "errors.csv")
        by_stage = errors.groupby("stage").sample_id.nunique().to_dict()
        print(
            f"errors: {n_err} error rows on {errors.sample_id.nunique()} samples {by_stage}; "
            f"see {outcome.run_dir / 'errors.csv'}"
        )
    print(
        f"results: {outcome.run_dir} (summary.csv, predictions.parquet; "
        f"{stats['chunks_computed']} chunk(s) computed, {stats['chunks_resumed']} resumed)"
    )


def multirun_failure_message(exc: BaseException) -> str:
    """One line for a multirun that stopped (its launcher found no Ray cluster, ...)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (
        f"error: the multirun stopped: {type(exc).__name__}: {first} "
        "(EVALHARNESS_DEBUG=1 for the trace)"
    )


def composition_error_line(exc: BaseException) -> str:
    """Hydra's multi-line refusal of an override (a mistyped key, bad grammar) as one line."""
    import difflib

    cause = exc.__cause__
    key = getattr(cause, "full_key", None)
    if "not in struct" in str(cause) and key:
        parent = getattr(cause, "parent_node", None)
        names = [str(k) for k in parent.keys() if k != "hydra"] if hasattr(parent, "keys") else []
        leaf = key.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(leaf, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return (
            f"error: unknown setting '{key}'{hint}; valid: {', '.join(names)} "
            f"(+{key}=... adds a new key)"
        )
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = "; ".join(ln for ln in lines if not ln.startswith("See https"))
    override = getattr(exc, "override", None)  # OverrideParseException names it
    if override:
        return f"error: cannot parse '{override}': {text}"
    from hydra.errors import HydraException

    if isinstance(exc, HydraException):
        return f"error: {text}"
    # OmegaConf failing to apply an override; the known case is a dotted sweep key
    keys = [a.split("=", 1)[0].lstrip("+~") for a in sys.argv[1:] if "=" in a]
    dotted = [k for k in keys if k.startswith("sweep.factors.") and k.count(".") >= 3]
    hint = (
        f"; '{dotted[0]}' reads as nested keys: write the factors whole, "
        "'sweep.factors={resize:[limit_min,limit_max],resize.limit_side_len:[736,960]}'"
        if dotted
        else ""
    )
    return f"error: the overrides cannot be applied ({type(exc).__name__}: {text}){hint}"


def main(argv: list[str]) -> None:
    """The sweep: check the group options, then Hydra's app (a run, or a multirun)."""
    from evalharness.commands.output import setup_logging
    from evalharness.config.compose import (
        check_group_choices,
        searchpath_dirs,
        store_for,
        sweep_factor_overrides,
        user_dirs,
    )
    from evalharness.config.store import CONFIG_PATH_ENV, check_dirs

    setup_logging()
    _USER_DIRS[:] = user_dirs([*config_dir_args(argv), *searchpath_dirs(argv)])
    try:
        check_dirs(_USER_DIRS)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    # Hydra's search-path plugin (and launcher subprocesses) read the dirs from here
    os.environ[CONFIG_PATH_ENV] = os.pathsep.join(_USER_DIRS)
    store = store_for(_USER_DIRS)
    problem = check_group_choices(argv, store)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    for clash in store.clashes():
        print(clash, file=sys.stderr)
    # Hydra parses sys.argv itself: `sweep.factors.colour=[...]` becomes `++sweep.factors...`
    sys.argv[1:] = sweep_factor_overrides(sys.argv[1:])
    if not {"-m", "--multirun"} & set(argv):
        _NEW_DIRS[:] = missing_run_dirs(argv, Path.cwd())
        if not any(a.lstrip("+").startswith("hydra.run.dir=") for a in argv):
            _DEFAULT_PARENT[0] = Path.cwd() / DEFAULT_RUN_PARENT
        # Hydra prints a refused override in several lines (exit 1), OmegaConf a trace for
        # one it cannot apply; raised before the job started, either is one line
        _run_hydra(Exception, composition_error_line, only_composition=True)
        return
    # In a multirun Hydra prints a launcher's failure (a Ray cluster that is not there, ...)
    # as a long trace; letting it through to here turns it into one line.
    _run_hydra(Exception, multirun_failure_message)


def _run_hydra(catch: type[BaseException], one_line, only_composition=False) -> None:
    """Run the Hydra app; an exception of type `catch` becomes one stderr line and rc 2
    (with `only_composition`, only one raised before the job started: a job's own failure
    keeps its trace, it is a bug)."""
    import hydra

    from evalharness.config.store import register_resolvers
    from evalharness.paths import CONF_DIR

    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    register_resolvers()
    app = hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(job)
    try:
        app()
    except catch as exc:
        if os.environ.get("EVALHARNESS_DEBUG") or (only_composition and _APP_STARTED[0]):
            raise
        print(one_line(exc), file=sys.stderr)
        sys.exit(2)
