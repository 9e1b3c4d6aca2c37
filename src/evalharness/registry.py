"""One generic registry: a name -> implementation map whose errors list the valid names.

Every stage (decoder, resizer, backend, ...) registers under the same name as its config
option file, so the name in a results CSV, the Hydra option and the code are one thing.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

# The factor groups of a run, in table order (each is a conf/ group and a summary column).
FACTORS = ("backend", "device", "decoder", "resize", "colour", "norm", "meanstd", "precision")

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message names the valid choices."""

    def __str__(self) -> str:  # KeyError quotes its message; people want it plain
        return str(self.args[0])


def unknown_choice_message(kind: str, name: str, choices: list[str]) -> str:
    """One line: what was asked, what exists, and the closest match when there is one."""
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown {kind} '{name}'{hint}; valid: {', '.join(sorted(choices))}"


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(unknown_choice_message(self.kind, name, self.names())) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
