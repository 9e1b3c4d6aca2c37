"""Text detection: DB post-processing (db.py), the ICDAR 2015 protocol (protocol.py), per-image
records (records.py) and the Task behind the seam (task.py, which says what is stored and how
precision, recall, hmean, per-image F and agreement are defined)."""

from evalharness.tasks.text_detection.task import TextDetection

__all__ = ["TextDetection"]
