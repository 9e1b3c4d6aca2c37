"""The Task seam: what the one evaluation loop, the store and the analysis ask of a task.

Like lm-evaluation-harness's Task (`process_results` per document, `aggregation` per
metric), a task owns everything between the model's named outputs and the numbers:

- `roles`: the outputs it reads ("logits"; "raw" for a YOLO head; "prob_map" for DB);
  the model config maps each role to the model's own output name;
- `predict`: post-processing of a batch (top-k; box decode + NMS; DB), with the Geometry
  each sample's pixels went through, so boxes and polygons are mapped back to the image;
- `columns` / `schema`: its part of predictions.parquet (one row per sample x config),
  including the per-image record its statistics need (correctness; COCO match records;
  ICDAR TP/FP/FN counts), so any resample is a re-aggregation, not a re-run;
- `summarize`: the dataset metric with its interval (Wilson for accuracy; bootstrap over
  images for mAP and hmean), its point estimate from the maintained library;
- `records` / `value`: per-image records and the metric over resamples of them (one index
  matrix reused for every config, so intervals of differences and of Shapley terms stay
  paired); `compare_images`: per image, is B better, worse or the same as A (exact sign
  test / McNemar on the discordant images); `agree`: per image, is B's outcome A's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from evalharness.preprocess.geometry import Frame
from evalharness.registry import Registry
from evalharness.tasks.drawing import Described, DrawInput, Panel

if TYPE_CHECKING:  # pandas loads when a table is read, not when a task registers
    import pandas as pd

# Columns every task's predictions have, before its own.
COMMON_SCHEMA = [
    ("sample_index", pa.int64()),
    ("sample_id", pa.string()),
    ("config_id", pa.string()),
]
ERROR_SCHEMA = [("error_stage", pa.string()), ("error", pa.string())]


class Task(ABC):
    name: str
    roles: tuple[str, ...]
    metric: str  # the headline summary column ("top1", "mAP", "hmean")
    metric_columns: tuple[str, ...]  # every metric column summarize() returns
    unit: str = "points"  # what metric differences are in ("points" of accuracy, "mAP", ...)
    number_format: str = "{:+.1f}"  # how a difference in that unit is printed
    # how the terminal table prints a metric column (default {:6.2f})
    column_formats: tuple[tuple[str, str], ...] = ()
    # Names of the per-image paired counts in pairs/compare tables: (worse, better).
    flip_names: tuple[str, str] = ("images_worse", "images_better")
    task_schema: list[tuple[str, pa.DataType]] = []
    # Samples carry a class label: per-class tables, and calibration balanced per class.
    labelled: bool = False
    # The metric is 100 x the mean of per-image 0/1 scores (top-1): a paired difference's
    # interval comes from the images that changed each way (Tango's score interval).
    paired_binary: bool = False
    # Factor groups of this task's domain (conf/<group>/), planned only for its models:
    # image-to-image's `tile`. Their option settings become variant options named
    # "<group>.<setting>", read by `wrap_session`; other tasks' configs are unchanged.
    factors: tuple[str, ...] = ()
    # The engine hands `predict` the reference config's raw outputs for the same samples
    # (`reference=`, None where the reference failed) and scores the reference first: a
    # task whose records compare outputs (image-to-image: tolerance, PSNR vs the reference)
    # cannot compute them from its own outputs alone.
    needs_reference_output: bool = False

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(COMMON_SCHEMA + self.task_schema + ERROR_SCHEMA)

    def for_model(self, model: Any) -> Task:
        """The task bound to a model's post-processing settings (model.postprocess: head
        type, thresholds, NMS IoU...); tasks without settings return themselves."""
        return self

    def check_dataset(self, dataset: Any, model: Any) -> None:  # noqa: B027 (optional hook)
        """Refuse a model/dataset pair that cannot be scored, before any sample is read."""

    def check_outputs(  # noqa: B027 (an optional hook)
        self, outputs: dict[str, np.ndarray], model: Any, dataset: Any
    ) -> None:
        """Checked on a probe inference: a wrong output shape fails before any sample."""

    def wrap_session(self, session: Any, variant: Any) -> Any:
        """The session the engine runs for this variant: a task may put its own way of
        running the model around the backend's (image-to-image: tiles, padding to the size
        multiple, the output guard); others run the backend's session as it is."""
        return session

    def read_outputs(self, outputs: dict[str, np.ndarray], model: Any) -> dict[str, np.ndarray]:
        """The runtime's outputs by role: the model config's mapping, else the task default
        (the first output for a task with one role)."""
        out = {}
        for i, role in enumerate(self.roles):
            name = model.output_for(role)
            if name is None:
                if len(self.roles) == 1 and len(outputs) >= 1:
                    name = next(iter(outputs))
                else:
                    name = list(outputs)[i] if i < len(outputs) else role
            if name not in outputs:
                raise ValueError(
                    f"model '{model.name}': output '{name}' (role {role}) not among its "
                    f"outputs {list(outputs)}; set outputs.{role} in the model config"
                )
            out[role] = outputs[name]
        return out

    @abstractmethod
    def predict(
        self, outputs: dict[str, np.ndarray], frames: list[Frame], samples: list[Any]
    ) -> list[dict[str, Any]]:
        """Post-process one batch: one prediction record (task columns) per sample."""

    @abstractmethod
    def failed(self, sample: Any) -> dict[str, Any]:
        """The task columns of a sample that failed a stage (it counts as wrong/missed)."""

    @abstractmethod
    def summarize(self, preds: pd.DataFrame, dataset: Any, idx: np.ndarray) -> dict[str, float]:
        """Metric columns (with _lo/_hi) of one config from its prediction rows."""

    @abstractmethod
    def records(self, preds: pd.DataFrame, dataset: Any) -> Any:
        """Per-image records of one config (rows in sample order), for resampling."""

    @abstractmethod
    def value(self, records: Any, idx: np.ndarray) -> np.ndarray:
        """The metric (in the summary's unit) on each resample; idx is (b, n) image indices."""

    def point(self, records: Any) -> float:
        n = self.n_images(records)
        return float(self.value(records, np.arange(n)[None, :])[0])

    @abstractmethod
    def n_images(self, records: Any) -> int: ...

    @abstractmethod
    def image_scores(self, records: Any) -> np.ndarray:
        """A per-image score (1/0 correct; per-image F) for paired sign tests and flips."""

    @abstractmethod
    def agree(self, a: Any, b: Any) -> np.ndarray:
        """Per image: is B's outcome the same as A's (top-1; matched detections)."""

    # ------------------------------------------------------------------ the report's view

    def describe(self, row: Any, classes: Any = ()) -> Described:
        """One prediction row in a table's words (flips.csv): what it predicted and how sure."""
        return Described("")

    def draw(self, item: DrawInput) -> list[Panel]:
        """What this config made of one image, as primitives (tasks/drawing.py) the report
        turns into thumbnails beside the model's input: the report never names a task."""
        return []


TASKS: Registry[Task] = Registry("task", "evalharness.tasks", entry_points="evalharness.tasks")


def get_task(name: str, model: Any = None) -> Task:
    """The registered task, bound to the model's post-processing settings when given."""
    task = TASKS.get(name)
    return task.for_model(model) if model is not None else task
