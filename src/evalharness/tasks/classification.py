"""Image classification: top-k from logits, accuracy with Wilson intervals.

Per image the record is the top-1 correctness (and the predicted class): accuracy is a mean
of those bits, so resampling images is resampling the bits, and two configs' records on the
same images give McNemar's discordant counts directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from evalharness.preprocess.geometry import Frame
from evalharness.stats.intervals import wilson_interval
from evalharness.tasks.base import TASKS, Task
from evalharness.tasks.drawing import Bars, Described, DrawInput, Panel

if TYPE_CHECKING:  # pandas loads when a table is read, not when a task registers
    import pandas as pd

TOPK = 5


@dataclass
class ClassRecords:
    correct: np.ndarray  # bool per image, top-1 correct
    pred: np.ndarray  # int per image, -1 when the sample failed


def as_logits(out: np.ndarray) -> np.ndarray:
    """(N, C) logits; (N, C, 1, 1) as Caffe / Open Model Zoo classifiers give is flattened."""
    if out.ndim > 2 and all(d == 1 for d in out.shape[2:]):
        return out.reshape(out.shape[0], out.shape[1])
    return out


class Classification(Task):
    name = "classification"
    roles = ("logits",)
    metric = "top1"
    metric_columns = ("top1", "top1_lo", "top1_hi", "top5")
    flip_names = ("right_to_wrong", "wrong_to_right")
    labelled = True
    paired_binary = True
    task_schema = [
        ("label", pa.int64()),
        ("pred", pa.int64()),
        ("correct1", pa.bool_()),
        ("correct5", pa.bool_()),
        ("top5", pa.list_(pa.int64())),
        ("label_logit", pa.float32()),
        ("top1_prob", pa.float32()),
    ]

    def check_dataset(self, dataset: Any, model: Any) -> None:
        k, n = model.num_classes, len(dataset.classes)
        if k is not None and k != n:
            whence = (
                f" ({model.num_classes_from})" if getattr(model, "num_classes_from", "") else ""
            )
            raise ValueError(
                f"model '{model.name}' has {k} classes{whence}, dataset '{dataset.name}' has "
                f"{n}: give the dataset the model's {k} class names in its index order "
                f"(dataset.classes=FILE), or set model.num_classes={n} if the model has {n}"
            )

    def check_outputs(self, outputs: dict[str, np.ndarray], model: Any, dataset: Any) -> None:
        out = as_logits(self.read_outputs(outputs, model)["logits"])
        n = len(dataset.classes)
        if out.ndim != 2 or out.shape[1] != n:
            raise ValueError(
                f"model '{model.name}' outputs shape {tuple(out.shape)}, but dataset has {n} "
                "classes (dataset.classes=FILE names the model's classes in its index order; "
                "model.outputs.logits=NAME picks another output)"
            )

    def predict(
        self, outputs: dict[str, np.ndarray], frames: list[Frame], samples: list[Any]
    ) -> list[dict[str, Any]]:
        logits = as_logits(outputs["logits"]).astype(np.float32, copy=False)
        finite = np.isfinite(logits).all(axis=1)
        # Stable sort on -logits: ties go to the lower class index, on every backend.
        order = np.argsort(-logits, axis=1, kind="stable")[:, :TOPK]
        z = logits - logits.max(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", over="ignore"):
            probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        out = []
        for j, s in enumerate(samples):
            if not finite[j]:
                rec = self.failed(s)
                rec.update(error_stage="infer", error="non-finite model output")
                out.append(rec)
                continue
            top = order[j].tolist()
            label = int(s.label)
            ok = label >= 0
            out.append(
                dict(
                    label=label,
                    pred=top[0],
                    correct1=ok and top[0] == label,
                    correct5=ok and label in top,
                    top5=top,
                    label_logit=float(logits[j, label]) if ok else float("nan"),
                    top1_prob=float(probs[j, top[0]]),
                )
            )
        return out

    def failed(self, sample: Any) -> dict[str, Any]:
        return dict(
            label=int(sample.label),
            pred=-1,
            correct1=False,
            correct5=False,
            top5=[-1] * TOPK,
            label_logit=float("nan"),
            top1_prob=float("nan"),
        )

    def summarize(self, preds: pd.DataFrame, dataset: Any, idx: np.ndarray) -> dict[str, float]:
        n = len(preds)
        k = int(preds.correct1.sum())
        lo, hi = wilson_interval(k, n)
        return dict(
            top1=k / n * 100 if n else float("nan"),
            top1_lo=float(lo) * 100,
            top1_hi=float(hi) * 100,
            top5=preds.correct5.sum() / n * 100 if n else float("nan"),
        )

    def records(self, preds: pd.DataFrame, dataset: Any) -> ClassRecords:
        return ClassRecords(
            preds.correct1.to_numpy(dtype=bool), preds.pred.to_numpy(dtype=np.int64)
        )

    def value(self, records: ClassRecords, idx: np.ndarray) -> np.ndarray:
        return records.correct[idx].mean(axis=1) * 100

    def n_images(self, records: ClassRecords) -> int:
        return len(records.correct)

    def image_scores(self, records: ClassRecords) -> np.ndarray:
        return records.correct.astype(float)

    def agree(self, a: ClassRecords, b: ClassRecords) -> np.ndarray:
        return a.pred == b.pred

    def describe(self, row: Any, classes: Any = ()) -> Described:
        def name(i: int) -> str:
            return str(classes[i]) if 0 <= i < len(classes) else str(i)

        # The true class's logit moves continuously where correctness only flips: how far an
        # image moved between two configs (one model, so the logits are on one scale).
        return Described(name(int(row["pred"])), float(row["top1_prob"]),
                         float(row["label_logit"]), name(int(row["label"])))  # fmt: skip

    def draw(self, item: DrawInput) -> list[Panel]:
        """Top-5 classes with their probabilities (softmax of the re-run logits; without a
        session only the stored top-1 probability is known), the true class marked."""
        label = int(item.sample.label) if item.sample is not None else -1
        if item.outputs is not None and "logits" in item.outputs:
            logits = as_logits(np.asarray(item.outputs["logits"])[None]).astype(np.float64)[0]
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            top = np.argsort(-logits, kind="stable")[:TOPK]
            values = [float(probs[i]) for i in top]
        elif item.row is not None:
            top = [int(i) for i in item.row["top5"]]
            values = [float(item.row["top1_prob"])] + [float("nan")] * (len(top) - 1)
        else:
            return []
        return [
            Bars(
                tuple(item.class_name(i) for i in top),
                tuple(values),
                tuple(int(i) == label for i in top),
                "top-5",
            )
        ]


TASKS.register("classification")(Classification())
