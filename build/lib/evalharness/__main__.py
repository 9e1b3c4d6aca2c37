"""`evalharness COMMAND ...` or `evalharness [group=option ...]`: see evalharness.commands."""

from __future__ import annotations

import sys


def main() -> None:
    from evalharness.commands import dispatch

    dispatch(sys.argv[1:])


if __name__ == "__main__":
    main()
