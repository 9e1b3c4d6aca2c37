"""One frozen RunPlan per command: the config resolved once, checked, before anything is written.

Every way of running builds its plan here -- the sweep on the command line (Hydra's job),
the Python API, on-demand configs of explain/findings/report (a run's recorded config
narrowed to one assignment), shards, benchmarks and tools -- through `build_plan`:

    Composed (config/compose.py) -> model card and stack applied -> model, dataset, task
    -> calibration images (held out) -> every config's RunSpec (config/plan.py)
    -> chunk size fitted to the memory budget -> RunPlan

Nothing below this module sees a DictConfig or reads an option file: the engine takes a
RunPlan; the run dir records `plan.config`, from which any config of the run is planned
again the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evalharness.backends.quantize import check_precision_settings
from evalharness.config import stacks
from evalharness.config.card import resolve_model
from evalharness.config.compose import Composed, compose, factor_choices, store_for
from evalharness.config.memory import fit_chunk
from evalharness.config.options import SweepOptions, positive_int, sweep_options
from evalharness.config.plan import NOT_SET, Planner, RunSpec, SweepSpec, explicit_factors
from evalharness.config.store import OptionStore
from evalharness.data.calibration import calibration_key, choose, hold_out
from evalharness.data.dataset import Dataset, Sample, load_dataset
from evalharness.models.fileinfo import OWN_RUNTIME
from evalharness.models.source import ModelSpec
from evalharness.registry import FACTORS
from evalharness.tasks.base import TASKS, Task, get_task


@dataclass(frozen=True)
class Calibration:
    """The images int8 calibrates on: held out of every config, or from another dataset."""

    samples: tuple[Sample, ...]
    source: str  # "held out of demo" | "of cifar10_test"
    key: str  # names the set (ids and contents): part of a quantized model's identity


@dataclass(frozen=True)
class RunPlan:
    specs: tuple[RunSpec, ...]
    model: ModelSpec
    dataset: Dataset  # the images every config is scored on (calibration images held out)
    task: Task
    options: SweepOptions
    columns: tuple[str, ...]  # factor columns: FACTORS, then swept settings (limit_side_len)
    settings: Mapping[str, str]  # swept setting column -> its sweep key (resize.limit_side_len)
    choices: Mapping[str, str]  # the base option of every factor
    config: Mapping[str, Any]  # the resolved config as it ran: the run dir's run_config.yaml
    calibration: Calibration | None = None
    notes: tuple[str, ...] = ()  # said once, up front: skipped combinations, a smaller chunk
    user_dirs: tuple[str, ...] = ()

    @property
    def sweep_name(self) -> str | None:
        return (self.config.get("sweep") or {}).get("name")

    @property
    def report(self) -> bool:
        return bool(self.config.get("report"))

    @property
    def tracking(self) -> Mapping[str, Any]:
        return self.config.get("tracking") or {}

    @property
    def is_shard(self) -> bool:
        return self.options.shard_count > 1

    @property
    def store(self) -> OptionStore:
        return store_for(self.user_dirs)


def plan_for(overrides: list[str], dirs=()) -> RunPlan:
    """Compose these overrides and plan them (tools, benchmarks, tests, the Python API)."""
    return build_plan(compose(overrides, dirs))


def build_plan(composed: Composed, explicit: set[str] | None = None) -> RunPlan:
    """The plan of a composed config; `explicit` names the factors the user chose (default:
    those the overrides set); the others take the model card's reference."""
    cfg = copy.deepcopy(dict(composed.config))
    store = store_for(composed.user_dirs)
    cfg["model"], model_notes = resolve_model(cfg["model"], composed.overrides)
    groups = (*FACTORS, *_task_factors(cfg))
    explicit = explicit_factors(list(composed.overrides), groups) if explicit is None else explicit
    choices, options, stack = _base(cfg, factor_choices(composed, groups), explicit, store)
    cfg.update(options)  # the record holds the options that ran, card and stack applied
    threads = positive_int("threads", cfg["threads"])
    opts = sweep_options(cfg)
    model = ModelSpec.from_config(cfg["model"])
    if model.source == "spandrel":  # the record says what spandrel read from the weights
        cfg["model"].update(architecture=model.architecture, scale=model.scale,
                            channels=model.channels, out_channels=model.out_channels,
                            size_multiple=model.size_multiple)  # fmt: skip
    task = get_task(model.task, model)
    dataset = load_dataset(cfg["dataset"])
    if dataset.task != model.task:
        raise ValueError(
            f"model '{model.name}' is a {model.task} model, dataset '{dataset.name}' is a "
            f"{dataset.task} dataset"
        )
    task.check_dataset(dataset, model)
    sweep = SweepSpec.of(cfg.get("sweep"))
    _check_precisions(options["precision"], choices, sweep, store)  # before images are held out
    calibration, scored = _calibration(cfg, dataset, task, sweep, choices, store)
    card = _card(cfg)
    planner = Planner(store, model, card, choices, options, threads,
                      calibration.key if calibration else "", stack, groups[len(FACTORS):],
                      dataset.extra.get("degradation"))  # fmt: skip
    specs, skipped = planner.expand(sweep)
    held = bool(cfg["calibration"].get("held_out"))
    if calibration is not None and not held and not any(_calibrates(s) for s in specs):
        calibration, scored = None, dataset  # nothing quantizes after all (all skipped)
    if calibration is not None and calibration.source.startswith("held out"):
        cfg["calibration"]["held_out"] = True  # on-demand configs hold out the same images
    opts, chunk_note = fit_chunk(specs, opts)
    return RunPlan(
        specs=tuple(specs),
        model=model,
        dataset=scored,
        task=task,
        options=opts,
        columns=factor_columns(specs),
        settings=sweep.settings,
        choices=choices,
        config=cfg,
        calibration=calibration,
        notes=(*model_notes, *skipped, *((chunk_note,) if chunk_note else ())),
        user_dirs=composed.user_dirs,
    )


def _calibrates(spec: RunSpec) -> bool:
    return bool(spec.variant.option("calibrate"))


def _task_factors(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """The factor groups the model's task adds (image-to-image: tile); an unknown task is
    named later, where the model is read."""
    name = str((cfg.get("model") or {}).get("task", "classification"))
    return TASKS.get(name).factors if name in TASKS else ()


def _card(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The model card, with the reference options a dataset that generates its inputs names
    (a degradation made with a resize: `reference: {resize: pil_bicubic}`) over the card's."""
    card = dict(cfg["model"].get("card") or {})
    extra = (cfg.get("dataset") or {}).get("reference") or {}
    if extra:
        card["reference"] = {**(card.get("reference") or {}), **extra}
    return card


def _base(cfg: dict, choices: dict[str, str], explicit: set[str], store: OptionStore):
    """Base choices and options: command line > stack > model card reference > defaults."""
    options = {f: dict(cfg[f]) for f in choices}
    stack = str((cfg.get(stacks.STACK) or {}).get("name") or "")
    stacked, explicit = stacks.apply_stack(stack, choices, explicit, store)
    for factor, name in stacked.items():
        if name != choices[factor]:
            options[factor] = store.load(factor, name)
    choices = stacked
    reference = _card(cfg).get("reference") or {}
    for factor, name in reference.items():
        if factor in choices and factor not in explicit and choices.get(factor) != str(name):
            options[factor] = store.load(factor, str(name))
            choices[factor] = str(name)
    # A model file runs on its own runtime unless the command line, a stack or the card
    # says otherwise (an ONNX file on onnxruntime, an IR on OpenVINO, ...): the defaults'
    # torch cannot run it at all.
    own = OWN_RUNTIME.get(str(cfg["model"].get("source", "torch")))
    if (
        own
        and "backend" not in explicit
        and "backend" not in reference
        and own != choices["backend"]
    ):
        options["backend"] = store.load("backend", own)
        choices["backend"] = own
    return choices, options, stack


def _candidate_precisions(choices, sweep: SweepSpec, store: OptionStore) -> set[str]:
    """Every precision option the sweep can reach (base, listed, set by a listed stack)."""
    names = {choices["precision"], *map(str, sweep.factors.get("precision", ()))}
    for stack in sweep.factors.get(stacks.STACK, ()):
        names.add(stacks.stack_factors(str(stack), store).get("precision", choices["precision"]))
    return names


def _check_precisions(base: dict, choices, sweep: SweepSpec, store: OptionStore) -> None:
    """Quantizer settings of every precision the sweep can reach (the base option as the
    command line set it, the swept values of `precision.*`): a bad one is named first."""
    swept = {k.split(".", 1)[1]: v for k, v in sweep.factors.items() if k.startswith("precision.")}
    for name in _candidate_precisions(choices, sweep, store):
        option = base if name == choices["precision"] else store.load("precision", name)
        check_precision_settings(name, option)
        for key, values in swept.items():
            for value in values:
                if key in option and str(value) != NOT_SET:
                    check_precision_settings(name, {**option, key: value})


def _calibration(cfg, dataset: Dataset, task: Task, sweep, choices, store):
    """The calibration images and the dataset left to score (all of it when none are held
    out). Held out of the evaluation set by default (recorded in the run config, so shards
    and on-demand runs hold out the very same images), or taken from calibration.dataset."""
    settings = cfg["calibration"]
    wanted = any(
        store.load("precision", p).get("calibrate")
        for p in _candidate_precisions(choices, sweep, store)
    )
    if not wanted and not settings.get("held_out"):
        return None, dataset
    n = positive_int("calibration.n", settings["n"])
    if settings.get("dataset"):
        other = str(settings["dataset"])
        source = load_dataset(store.load("dataset", other))
        calib = choose(source, n, task.labelled)
        key = calibration_key(calib, source.content_hash)
        return Calibration(tuple(calib), f"of {other}", key), dataset
    calib = choose(dataset, n, task.labelled)
    key = calibration_key(calib, dataset.content_hash)
    return Calibration(tuple(calib), f"held out of {dataset.name}", key), hold_out(dataset, calib)


def factor_columns(specs: list[RunSpec]) -> tuple[str, ...]:
    """FACTORS, then any swept settings (limit_side_len, ...), in first-seen order."""
    cols = list(FACTORS)
    for s in specs:
        cols += [k for k, _ in s.factors if k not in cols]
    return tuple(cols)


def narrowed(recorded: Mapping[str, Any], config: Mapping[str, str], settings) -> dict:
    """A run's recorded config narrowed to one factor assignment (a one-config sweep), for
    configs the run lacks (on-demand evaluation): same model, data, calibration, threads."""
    cfg = copy.deepcopy(dict(recorded))
    factors = {settings.get(f, f): [v] for f, v in config.items()}
    cfg["sweep"] = {"factors": factors, "exclude": []}
    cfg["progress"] = False
    cfg["shard"] = {"index": 0, "count": 1}
    return cfg


def plan_recorded(
    recorded: Mapping[str, Any], choices: Mapping[str, str], config, settings, dirs=()
) -> RunPlan:
    """The plan of one config of a finished run, from what the run recorded."""
    cfg = narrowed(recorded, config, settings)
    composed = Composed(cfg, {**choices, stacks.STACK: ""}, (), tuple(dirs))
    return build_plan(composed, explicit=set(FACTORS) | set(choices))
