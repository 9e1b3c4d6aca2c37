"""The one exception type a stage raises for a per-sample failure."""


class StageError(Exception):
    """A sample could not pass a stage; becomes an error row (sample, stage, reason)."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason
