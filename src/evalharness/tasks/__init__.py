"""Tasks: classification, object detection, text detection, behind one seam (base.Task)."""

from __future__ import annotations


def register_all() -> None:
    """Import every task module (each registers itself in TASKS); cheap after the first."""
    from evalharness.tasks import classification, text_detection  # noqa: F401
    from evalharness.tasks.detection import task  # noqa: F401
