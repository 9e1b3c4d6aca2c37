"""Image-to-image models (upscalers, denoisers) as a task: the Task (task.py), how the
engine runs such a model (session.py: tiles, padding, the output guard), metrics, tiling,
the report's views, and runners for checks outside the engine (export.py).

`metrics`, `tiling` and `export` import nothing from the rest of the package (the figures
script and the core tests use them directly); importing the package registers the task.
"""

from evalharness.tasks.image_to_image import task  # noqa: F401 (registers image_to_image)
