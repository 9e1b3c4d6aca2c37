"""The one parser for `factor=value` lists (explain's --a/--b, parity's --a/--b, report's --b).

People type these lists three ways -- `--b resize=cv2_linear colour=bgr`, `--b
resize=cv2_linear,colour=bgr`, or both mixed -- and every command must read them the same,
with the same error for a typo. Names are checked by the command that knows them (explain
against the run's factor columns, parity through Hydra); here only the shape is.
"""

from __future__ import annotations

from collections.abc import Iterable


class AssignmentError(ValueError):
    """A `factor=value` list that cannot be read; the message says which item."""


def parse_assignments(items: Iterable[str] | str | None) -> dict[str, str]:
    """`factor=value` items, space separated (several argv items) or comma separated.

    Order is kept (it is the order people read them back in). The same factor given twice
    with two different values is an error, not a silent last-one-wins.
    """
    if isinstance(items, str):
        items = [items]
    out: dict[str, str] = {}
    for item in items or []:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or not key:
                raise AssignmentError(f"expected factor=value, got '{part}'")
            if key in out and out[key] != value:
                raise AssignmentError(f"'{key}' given twice ({out[key]!r} and {value!r})")
            out[key] = value
    return out


def as_overrides(assignments: dict[str, str]) -> list[str]:
    """Back to Hydra override strings (`key=value`), for commands that compose a config."""
    return [f"{k}={v}" for k, v in assignments.items()]
