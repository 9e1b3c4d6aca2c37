"""The model settings as they will run: the card's preset applied, a file model's facts read.

The model card is the preprocessing the model was *trained* with; it defines the reference
config every other config is compared against. A factor on the command line (`meanstd=half`,
`colour=bgr`) is a deviation from the card, never the card itself: to say "this model was
trained TF-style", set the card (`model.card.preset=tf`, or `model.card.mean=...`), and the
reference follows.

For a file model (ONNX, OpenVINO IR, ncnn, LiteRT) the settings the file itself answers --
class count, input name, fixed input size -- are read from it when the config leaves them
to the file (`num_classes: auto`, `card.input_size: auto`). What was read is said in one
note, so a surprise (a 1000-class output for a 10-class dataset) is visible before the run.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from evalharness.models.fileinfo import read_file_info
from evalharness.paths import resolve_path

AUTO = "auto"
FALLBACK_SIZE = 224  # a dynamic-size file model whose card does not say: the common size

# Training-time preprocessing recipes, in the harness's units (pixels scaled to 0..1, mean and
# std per *model* input channel). `colour` is the order the model was trained on.
PRESETS: dict[str, dict[str, Any]] = {
    # torchvision / timm ImageNet weights
    "torch": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "colour": "rgb"},
    # TF/Keras "inception" scaling: x / 127.5 - 1 (MobileNet, EfficientNet-Lite, ...)
    "tf": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "colour": "rgb"},
    # Caffe / Keras "caffe" mode: BGR, per-channel mean on 0..255, no scaling
    "caffe_bgr": {
        "mean": [103.939 / 255, 116.779 / 255, 123.68 / 255],
        "std": [1 / 255, 1 / 255, 1 / 255],
        "colour": "bgr",
    },
    # 0..1 pixels, no normalization
    "unit": {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "colour": "rgb"},
    # 0..255 pixels, no normalization (many detectors)
    "raw255": {"mean": [0.0, 0.0, 0.0], "std": [1 / 255, 1 / 255, 1 / 255], "colour": "rgb"},
}


def _card_fields_given(overrides: Sequence[str]) -> set[str]:
    """Card fields set on the command line (`model.card.mean=...`): they beat a preset."""
    out = set()
    for o in overrides:
        key = o.lstrip("+~").split("=", 1)[0]
        if key.startswith("model.card."):
            out.add(key[len("model.card.") :].split(".", 1)[0])
    return out


def apply_preset(card: Mapping[str, Any], overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The card with its `preset` applied: the preset's mean, std and colour replace the
    config file's, and fields named on the command line replace the preset's."""
    card = copy.deepcopy(dict(card))
    name = card.get("preset")
    if not name:
        return card
    if str(name) not in PRESETS:
        valid = ", ".join(PRESETS)
        raise ValueError(f"unknown model.card.preset '{name}'; valid: {valid}")
    given = _card_fields_given(overrides)
    preset = PRESETS[str(name)]
    for key in ("mean", "std"):
        if key not in given:
            card[key] = list(preset[key])
    reference = dict(card.get("reference") or {})
    if "reference" not in given:
        reference["colour"] = preset["colour"]
    card["reference"] = reference
    del card["preset"]  # applied: a recorded config re-planned gives the same card
    card["preset_applied"] = str(name)
    return card


def resolve_model(model: Mapping[str, Any], overrides: Sequence[str] = ()):
    """(model settings as they will run, notes). The preset applied; for a file model, the
    class count, input size and input name the config leaves to the file read from it."""
    model = copy.deepcopy(dict(model))
    model["card"] = apply_preset(model.get("card") or {}, overrides)
    card = model["card"]
    source = str(model.get("source", "torch"))
    wants = model.get("num_classes") == AUTO or card.get("input_size") == AUTO
    weights = model.get("weights")
    path = resolve_path(weights) if weights not in (None, "???") else None
    info = read_file_info(path, source) if path is not None and path.is_file() else None
    if info is None:
        if wants:  # a torch model, or a file that is not there (named by the model spec)
            model["num_classes"] = None if model.get("num_classes") == AUTO else model.get(
                "num_classes")  # fmt: skip
            if card.get("input_size") == AUTO:
                card["input_size"] = FALLBACK_SIZE
        return model, []
    read = []
    if model.get("num_classes") == AUTO:
        model["num_classes"] = info.num_classes
        model["num_classes_from"] = f"read from {path.name}" if info.num_classes else ""
        if info.num_classes:
            read.append(f"{info.num_classes} classes")
    if card.get("input_size") == AUTO:
        card["input_size"] = list(info.input_hw) if info.input_hw else FALLBACK_SIZE
        read.append(
            f"input {info.input_hw[0]}x{info.input_hw[1]}"
            if info.input_hw
            else f"input size not fixed in the file: {FALLBACK_SIZE} (model.card.input_size=N)"
        )
    if not model.get("input_name") and info.input_name:
        model["input_name"] = info.input_name
    if info.layout:
        read.append(f"input '{info.input_name}' {info.layout}")
    note = f"model {model.get('name')}: {', '.join(read)} (read from {path.name})"
    return model, [note] if read else []
