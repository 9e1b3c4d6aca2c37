"""What analysis asks of the configs a run lacks: passed in, never imported.

explain, findings and the report sometimes need a config the sweep did not evaluate (a
Shapley coalition, A itself, the model view and raw outputs of a config in the gallery).
Evaluating one is the runner's job (it plans and runs the engine), which sits above
analysis; so the runner hands analysis an object with this shape
(runner/ondemand.py::RunDirConfigs). `NoConfigs` is the one that evaluates nothing (merge: no
backend loaded; a read-only look).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from evalharness.analysis.results import RunResults


class ConfigSource(Protocol):
    def evaluate(self, configs: list[dict[str, str]]) -> RunResults | None:
        """The configs' results on the run's samples (None when there is nothing to run)."""

    def problem(self, config: dict[str, str]) -> str | None:
        """Why the config cannot run at all (from the declarations), or None."""

    def spec(self, config: dict[str, str]) -> Any:
        """The config's RunSpec (its host pipeline and variant)."""

    def outputs(self, config: dict[str, str], sample_ids: list[str]) -> list[Any]:
        """The config's model input and raw outputs for these samples (runner/ondemand.py
        SampleOutputs): images the report draws (image-to-image: `Task.views`)."""

    def session(self, config: dict[str, str]) -> Any:
        """The config's model variant loaded as its sweep loaded it (derived models from the
        cache): the report re-runs the few images it draws to show the raw outputs."""


class NoConfigs:
    """Evaluates nothing: a coalition the run lacks stays missing (said where it matters)."""

    def evaluate(self, configs: list[dict[str, str]]) -> RunResults | None:
        if configs:
            raise ValueError(
                f"{len(configs)} config(s) the run lacks would have to be evaluated; this "
                "command evaluates none"
            )
        return None

    def problem(self, config: dict[str, str]) -> str | None:
        return None

    def spec(self, config: dict[str, str]) -> Any:
        raise ValueError("this command plans no config")

    def outputs(self, config: dict[str, str], sample_ids: list[str]) -> list[Any]:
        raise ValueError("this command runs no model")

    def session(self, config: dict[str, str]) -> Any:
        raise ValueError("this command loads no model")
