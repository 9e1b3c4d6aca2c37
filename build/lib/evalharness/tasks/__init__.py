"""Tasks behind one seam (base.Task): classification, object detection, text detection.

Each module (or subpackage, whose __init__ imports its task module) registers its Task in
TASKS; the registry finds them (registry.py), so adding a task is adding its module.
"""
