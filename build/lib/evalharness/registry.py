"""One registry, one way to plug in: a name -> implementation map that finds its members.

Every stage (decoder, resizer, backend, task, dataset loader) registers under the same name
as its config option file, so the name in a results CSV, the Hydra option and the code are
one thing. A registry knows the package its members live in: on first use it imports every
module of that package (each registers itself with `@REGISTRY.register(name)`), then every
module named by the `evalharness.<kind>` entry point group of installed distributions -- the
same decorator, from a third-party package. Adding a backend is therefore one module in
`backends/runtimes/` (or one entry point) and its YAML: no list to extend anywhere.

Member modules must stay light to import (their runtime is imported inside `load()`), so
discovering them all costs milliseconds and a missing optional runtime breaks only the
configs that use it.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import pkgutil
import threading
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
    """Members by name; `package` is imported module by module on first use.

    package:      dotted name of the package whose modules register members (each module
                  and subpackage is imported; a subpackage's __init__ imports its own
                  registering module);
    entry_points: the entry point group third-party distributions register members under.
    """

    def __init__(self, kind: str, package: str = "", entry_points: str = "") -> None:
        self.kind = kind
        self.package = package
        self.entry_points = entry_points
        self._items: dict[str, T] = {}
        self._loaded = not package and not entry_points
        self._lock = threading.RLock()

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._items[name] = obj
            return obj

        return deco

    def _discover(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True  # set first: member modules call back into the registry
            if self.package:
                pkg = importlib.import_module(self.package)
                for info in pkgutil.iter_modules(pkg.__path__):
                    if not info.name.startswith("_"):
                        importlib.import_module(f"{self.package}.{info.name}")
            if self.entry_points:
                for ep in importlib.metadata.entry_points(group=self.entry_points):
                    importlib.import_module(ep.value.split(":", 1)[0])

    def get(self, name: str) -> T:
        self._discover()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(unknown_choice_message(self.kind, name, self.names())) from None

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        self._discover()
        return sorted(self._items.items())

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._items
