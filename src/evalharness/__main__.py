"""`evalharness [group=option ...] [+sweep=NAME]`: evaluate a config or a sweep.

`evalharness COMMAND ...` (explain, compare, parity, verify, merge, report, findings) and
`evalharness --help` are dispatched first (evalharness.cli); everything else is Hydra's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from evalharness import CONF_DIR
from evalharness.registry import unknown_choice_message


def check_group_choices(argv: list[str]) -> str | None:
    """One readable line for `group=unknown`, before Hydra prints its multi-line error."""
    for arg in argv:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.split("=", 1)
        group = key.lstrip("+~")
        folder = CONF_DIR / group
        if "." in group or "/" in group or not folder.is_dir():
            continue
        names = sorted(p.stem for p in folder.glob("*.yaml"))
        for v in value.split(","):  # multirun lists: backend=torch,onnxruntime
            if v and v not in names:
                return unknown_choice_message(group, v, names)
    return None


# Folders on the way to the run dir that did not exist before this command: Hydra creates
# the run dir before the job starts, so a refused command removes them again (if empty).
_NEW_DIRS: list[Path] = []
DEFAULT_RUN_PARENT = "results"  # hydra.run.dir's default is results/<time> (conf/config.yaml)
_DEFAULT_PARENT: Path | None = None  # set when the command did not name hydra.run.dir


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


_APP_STARTED: list[bool] = [False]  # composition is over once the job function runs


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    _APP_STARTED[0] = True

    from evalharness.app import run_from_hydra  # heavy imports after Hydra parsed the args

    run_dir = Path(HydraConfig.get().runtime.output_dir).absolute()
    created = list(_NEW_DIRS)
    if run_dir not in created and run_dir.parent.absolute() == _DEFAULT_PARENT:
        created.insert(0, run_dir)  # the default results/<time>: made by this command
    try:
        run_from_hydra(cfg)
    except SystemExit as e:
        if e.code:
            remove_if_empty(created)
        raise


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


def main() -> None:
    from evalharness.cli import dispatch

    dispatch(sys.argv[1:])  # a command or the overview help: runs it and exits
    problem = check_group_choices(sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    if not {"-m", "--multirun"} & set(sys.argv[1:]):
        global _DEFAULT_PARENT
        _NEW_DIRS[:] = missing_run_dirs(sys.argv[1:], Path.cwd())
        if not any(a.lstrip("+").startswith("hydra.run.dir=") for a in sys.argv[1:]):
            _DEFAULT_PARENT = Path.cwd() / DEFAULT_RUN_PARENT
        # Hydra prints a refused override in several lines (exit 1), OmegaConf a trace for
        # one it cannot apply; raised before the job started, either is one line
        _run_hydra_main(Exception, composition_error_line, only_composition=True)
        return
    # In a multirun Hydra prints a launcher's failure (a Ray cluster that is not there, ...)
    # as a long trace; letting it through to here turns it into one line.
    _run_hydra_main(Exception, multirun_failure_message)


def _run_hydra_main(catch: type[BaseException], one_line, only_composition=False) -> None:
    """Run the Hydra app; an exception of type `catch` becomes one stderr line and rc 2
    (with `only_composition`, only one raised before the job started: a job's own failure
    keeps its trace, it is a bug)."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        _hydra_main()
    except catch as exc:
        if os.environ.get("EVALHARNESS_DEBUG") or (only_composition and _APP_STARTED[0]):
            raise
        print(one_line(exc), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
