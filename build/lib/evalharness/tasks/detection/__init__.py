"""Object detection: heads (YOLOX, NanoDet) -> NMS -> source pixels -> COCO mAP (task.py)."""

from evalharness.tasks.detection import task  # noqa: F401  (registers the task)
