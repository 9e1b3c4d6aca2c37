"""One command line: `evalharness <command>` for the tools, `evalharness [overrides]` to sweep.

The ecosystem's way (git, Polygraphy, mlflow): one program whose first word picks the job.
A first argument that names a command runs that command's `main(argv)` (each tool keeps its
own module, so `python -m evalharness.explain` goes on working); anything else goes to Hydra
as today. Errors a user can fix end with one `error:` line and exit code 2, for every
command alike (EVALHARNESS_DEBUG=1 shows the trace instead).
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from dataclasses import dataclass

from evalharness import CONF_DIR


@dataclass(frozen=True)
class Command:
    module: str  # holds `main(argv) -> int`
    summary: str
    overrides: bool = False  # takes Hydra overrides: group options are checked first


COMMANDS = {
    "explain": Command(
        "evalharness.explain", "which factor explains a gap in a run dir, by how much (Shapley)"
    ),
    "compare": Command(
        "evalharness.compare", "results against results (run dirs or CSVs); a regression gate"
    ),
    "parity": Command(
        "evalharness.parity", "where, stage by stage, two pipelines' tensors diverge", True
    ),
    "verify": Command(
        "evalharness.verify", "exports (ONNX, OpenVINO, fp16) against the model on samples", True
    ),
    "merge": Command("evalharness.merge", "shards of one sweep into one run dir"),
    "report": Command("evalharness.report.build", "report.html and report.md for a run dir"),
    "findings": Command("evalharness.cli.findings", "the findings block of a run dir, again"),
}

EXIT_CODES = """\
exit codes:
  0  done
  1  a gate failed: `compare --fail-on-drop`, `verify` with a failing fp32 export
  2  a mistake in what was asked (unknown option or factor, missing file, impossible
     combination, a run dir of another sweep): one `error:` line on stderr"""

SWEEP_EXAMPLES = """\
sweep (Hydra overrides; results/<date>_<time>/ unless hydra.run.dir=DIR):
  evalharness +sweep=preproc_ablation              the demo's 72 configs
  evalharness backend=openvino norm=ov_ppp         one config
  evalharness +sweep=preproc_ablation report=true tracking=mlflow
  evalharness dataset=filename_labels dataset.root=/data/val model=onnx_file \\
      model.weights=/models/resnet50.onnx backend=onnxruntime
  evalharness -m backend=torch,onnxruntime         one run dir per job"""


def _groups() -> str:
    lines = []
    for folder in sorted(p for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra"):
        names = sorted(p.stem for p in folder.glob("*.yaml"))
        text = f"{folder.name}: {', '.join(names)}"
        lines += textwrap.wrap(text, 96, initial_indent="  ", subsequent_indent="      ")
    return "config groups (group=option; `+sweep=` and `+case=` add one):\n" + "\n".join(lines)


def help_text() -> str:
    width = max(map(len, COMMANDS))
    commands = "\n".join(f"  {n:<{width}}  {c.summary}" for n, c in COMMANDS.items())
    return (
        "usage: evalharness [group=option ...] [key=value ...]   run a config or a sweep\n"
        "       evalharness COMMAND [args]                     (evalharness COMMAND --help)\n\n"
        "Same weights, different numbers: one model through every preprocessing and runtime\n"
        "combination, metrics with intervals, and the factor to blame.\n\n"
        f"commands:\n{commands}\n\n{SWEEP_EXAMPLES}\n\n{_groups()}\n\n{EXIT_CODES}\n\n"
        "Hydra's own options: evalharness --hydra-help; the composed config: evalharness "
        "--cfg job\n"
    )


def _is_word(arg: str) -> bool:
    """A bare word: not a Hydra override (`k=v`, `+k=v`, `~k`) and not an option."""
    return "=" not in arg and not arg.startswith(("-", "+", "~"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_command(name: str, argv: list[str]) -> int:
    """Run one command's `main(argv)`; a user's mistake becomes one line and exit code 2."""
    from hydra.errors import HydraException

    from evalharness.registry import UnknownNameError

    command = COMMANDS[name]
    if command.overrides:
        from evalharness.__main__ import check_group_choices

        problem = check_group_choices(argv)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    # argparse names the program after argv[0]: make `--help` say `evalharness explain`.
    prog, sys.argv[0] = sys.argv[0], f"evalharness {name}"
    try:
        return int(importlib.import_module(command.module).main(argv) or 0)
    except (ValueError, FileNotFoundError, UnknownNameError, HydraException) as e:
        if os.environ.get("EVALHARNESS_DEBUG"):
            raise
        print(f"error: {_first_line(e)}", file=sys.stderr)
        return 2
    finally:
        sys.argv[0] = prog


def dispatch(argv: list[str]) -> None:
    """Run (and exit with) a command or the overview help; return for a Hydra run."""
    if not argv:
        return
    first = argv[0]
    if first in ("-h", "--help", "help"):
        print(help_text(), end="")
        sys.exit(0)
    if first in COMMANDS:
        sys.exit(run_command(first, argv[1:]))
    if _is_word(first):
        from evalharness.registry import unknown_choice_message

        msg = unknown_choice_message("command", first, list(COMMANDS))
        print(f"error: {msg} (or a Hydra override group=option)", file=sys.stderr)
        sys.exit(2)
