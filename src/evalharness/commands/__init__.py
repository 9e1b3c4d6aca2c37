"""One command line: `evalharness <command>` for the tools, `evalharness [overrides]` to sweep.

The ecosystem's way (git, Polygraphy, mlflow): one program whose first word picks the job.
Each verb is one module here with `main(argv) -> int`: it parses its arguments, calls the
library (which returns data and never prints) and prints the result; anything that is not a
verb goes to the sweep (commands/sweep.py, Hydra's app). This package is the only place
that parses arguments or prints. Modules import the library inside `main`, after parsing,
so `--help` answers at once. Errors a user can fix end with one `error:` line and exit code
2, for every command alike (EVALHARNESS_DEBUG=1 shows the trace instead).
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    module: str  # holds `main(argv) -> int`
    summary: str
    overrides: bool = False  # takes Hydra overrides: group options are checked first


COMMANDS = {
    "explain": Command(
        "evalharness.commands.explain", "which factor explains a gap in a run dir (Shapley)"
    ),
    "compare": Command(
        "evalharness.commands.compare", "results against results (run dirs or CSVs); a gate"
    ),
    "layers": Command(
        "evalharness.commands.layers", "where, layer by layer, two configs of a run dir part"
    ),
    "parity": Command(
        "evalharness.commands.parity", "where, stage by stage, two pipelines' tensors diverge", True
    ),
    "verify": Command(
        "evalharness.commands.verify", "exports (ONNX, OpenVINO, fp16) against the model", True
    ),
    "merge": Command("evalharness.commands.merge", "shards of one sweep into one run dir"),
    "report": Command("evalharness.commands.report", "report.html and report.md for a run dir"),
    "findings": Command("evalharness.commands.findings", "the findings block of a run dir, again"),
}

EXIT_CODES = """\
exit codes:
  0  done
  1  a gate failed: `compare --fail-on-drop`, `verify` with a failing fp32 export
  2  a mistake in what was asked (unknown option or factor, missing file, impossible
     combination, a run dir of another sweep, a tracking server that does not answer):
     one `error:` line on stderr, nothing written
  3  the sweep finished and its results are in the run dir, but tracking=mlflow could not
     log it (the same command with the same hydra.run.dir logs it, recomputing nothing)"""

SWEEP_EXAMPLES = """\
sweep (Hydra overrides; results/<date>_<time>/ unless hydra.run.dir=DIR):
  evalharness +sweep=preproc_ablation              the demo's 72 configs
  evalharness backend=openvino norm=ov_ppp         one config
  evalharness +sweep=preproc_ablation report=true tracking=mlflow
  evalharness model=onnx_file model.weights=/models/resnet50.onnx \\
      dataset=filename_labels dataset.root=/data/val   your model: its runtime, classes, size
  evalharness -m backend=torch,onnxruntime         one run dir per job"""


def _groups(dirs: list[str]) -> str:
    from evalharness.config.compose import store_for, user_dirs

    store = store_for(user_dirs(dirs))
    lines = []
    for group in store.groups():
        mine = set(store.user_names(group))
        names = [f"{n}*" if n in mine else n for n in store.names(group)]
        text = f"{group}: {', '.join(names)}"
        lines += textwrap.wrap(text, 96, initial_indent="  ", subsequent_indent="      ")
    head = "config groups (group=option; `+sweep=` and `+case=` add one):"
    if store.user_dirs:
        where = ", ".join(map(str, store.user_dirs))
        head += f"\n  * = from your config dirs (first wins): {where}"
    tail = "".join(f"\n  {c}" for c in store.clashes())
    return head + "\n" + "\n".join(lines) + tail


USER_CONFIGS = """\
your configs (sweep/, model/, dataset/, stack/, ... as in the package's conf/):
  evalharness --config-dir DIR +sweep=mine        or EVALHARNESS_CONFIG_PATH=DIR1:DIR2
  a file named like a shipped one replaces it (a line on stderr says which file wins)"""


def help_text(dirs: list[str] | None = None) -> str:
    width = max(map(len, COMMANDS))
    commands = "\n".join(f"  {n:<{width}}  {c.summary}" for n, c in COMMANDS.items())
    return (
        "usage: evalharness [group=option ...] [key=value ...]   run a config or a sweep\n"
        "       evalharness COMMAND [args]                     (evalharness COMMAND --help)\n\n"
        "Same weights, different numbers: one model through every preprocessing and runtime\n"
        "combination, metrics with intervals, and the factor to blame.\n\n"
        f"commands:\n{commands}\n\n{SWEEP_EXAMPLES}\n\n{USER_CONFIGS}\n\n"
        f"{_groups(dirs or [])}\n\n{EXIT_CODES}\n\n"
        "Hydra's own options: evalharness --hydra-help; the composed config: evalharness "
        "--cfg job\n"
    )


def _is_word(arg: str) -> bool:
    """A bare word: not a Hydra override (`k=v`, `+k=v`, `~k`) and not an option."""
    return "=" not in arg and not arg.startswith(("-", "+", "~"))


def _first_line(exc: BaseException) -> str:
    """One line that keeps the cause (a runtime's message may open with where it was raised);
    an OSError names its file (a read-only dir, a full disk)."""
    from evalharness.optional import error_line

    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f" ({exc.filename})" if exc.filename else "")
    return error_line(exc, limit=2000)


def _user_error(exc: Exception) -> bool:
    """A mistake the user can fix from one line. The classes are imported only when there is
    an error: `evalharness explain --help` must not load Hydra or the run-dir code."""
    from hydra.errors import HydraException

    from evalharness.registry import UnknownNameError
    from evalharness.rundir.claim import PlanMismatchError, RunDirBusyError

    kinds = (ValueError, OSError, UnknownNameError, HydraException, PlanMismatchError,
             RunDirBusyError)  # fmt: skip
    return isinstance(exc, kinds)


def run_command(name: str, argv: list[str]) -> int:
    """Run one command's `main(argv)`; a user's mistake becomes one line and exit code 2."""
    command = COMMANDS[name]
    if command.overrides:
        from evalharness.config.compose import check_group_choices, store_for, user_dirs

        problem = check_group_choices(argv, store_for(user_dirs()))
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    # argparse names the program after argv[0]: make `--help` say `evalharness explain`.
    prog, sys.argv[0] = sys.argv[0], f"evalharness {name}"
    try:
        return int(importlib.import_module(command.module).main(argv) or 0)
    except Exception as e:
        if not _user_error(e) or os.environ.get("EVALHARNESS_DEBUG"):
            raise
        print(f"error: {_first_line(e)}", file=sys.stderr)
        return 2
    finally:
        sys.argv[0] = prog


def dispatch(argv: list[str]) -> None:
    """Run a command, the overview help, or (anything else) the sweep."""
    from evalharness.commands.sweep import config_dir_args, without_config_dirs

    rest = without_config_dirs(argv)  # `--config-dir DIR --help` lists DIR's options too
    first = argv[0] if argv else ""
    if rest[:1] and rest[0] in ("-h", "--help", "help"):
        print(help_text(config_dir_args(argv)), end="")
        sys.exit(0)
    if first in COMMANDS:
        from evalharness.commands.output import setup_logging

        setup_logging()
        sys.exit(run_command(first, argv[1:]))
    if first and _is_word(first):
        from evalharness.registry import unknown_choice_message

        msg = unknown_choice_message("command", first, list(COMMANDS))
        print(f"error: {msg} (or a Hydra override group=option)", file=sys.stderr)
        sys.exit(2)
    from evalharness.commands.sweep import main as sweep

    sweep(argv)
