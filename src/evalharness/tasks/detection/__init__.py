"""Object detection: heads (YOLOX, NanoDet) -> NMS -> source pixels -> COCO mAP (task.py)."""
