"""python -m evalharness.report RUN_DIR: the same as `evalharness report RUN_DIR`."""

import sys

from evalharness.cli import run_command

sys.exit(run_command("report", sys.argv[1:]))
