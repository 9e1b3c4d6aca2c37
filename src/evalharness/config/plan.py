"""Factor product -> run specs: one per evaluated config, each with its pipeline and variant.

A factor is a Hydra config group; its value is an option file name under conf/<group>/.
The base config (the defaults list plus command-line choices) supplies every factor a sweep
does not list. Precedence for each setting: sweep factor option > model card > default.

A sweep may also vary one setting of an option (`resize.limit_side_len: [736, 960]`): such a
setting is a column of its own (`limit_side_len`) and part of the config's identity.

What can run where is read from the declarations (backend Capabilities and rules, decoder
caps, resizer info): an impossible combination is named here, before any work starts. The
model card's reference config, completed with backend/precision/device defaults, is always
part of the plan, so every config has an agreement with the reference.

Everything here works on plain data (the option files' contents, the model card as a dict):
Hydra's DictConfig stops at config/runplan.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from evalharness.backends.base import BACKENDS, ModelVariant
from evalharness.backends.quantize import check_precision_settings
from evalharness.config import stacks
from evalharness.config.store import OptionStore
from evalharness.models.fileinfo import OWN_RUNTIME
from evalharness.models.source import ModelSpec
from evalharness.preprocess.colour import ColourSpec, HostNormSpec
from evalharness.preprocess.decode import DECODERS, DecodeSpec
from evalharness.preprocess.degrade import degrade_spec
from evalharness.preprocess.pipeline import Stage, build_pipeline
from evalharness.preprocess.resize import RESIZERS, ResizeSpec
from evalharness.registry import FACTORS, UnknownNameError, unknown_choice_message

REFERENCE_DEFAULTS = {"precision": "fp32", "device": "cpu", "norm": "host", "meanstd": "card"}
Option = dict[str, Any]  # one option file's contents


class PlanError(ValueError):
    """The sweep cannot run as configured; raised before any work is done."""


@dataclass(frozen=True)
class RunSpec:
    """One config of a sweep: the factor values, its host pipeline and its model variant."""

    config_id: str
    factors: tuple[tuple[str, str], ...]  # FACTORS, then any swept settings (limit_side_len)
    stages: tuple[Stage, ...]
    variant: ModelVariant
    is_reference: bool = False
    stack: str = ""  # the named stack that set its factors (config/stacks.py); not identity

    @property
    def factor_dict(self) -> dict[str, str]:
        return dict(self.factors)


@dataclass(frozen=True)
class SweepSpec:
    """A sweep file's contents: values per factor (and per `group.setting`), exclusions."""

    factors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    exclude: tuple[Mapping[str, Any], ...] = ()
    mode: str = "product"
    impossible: str = "refuse"
    name: str | None = None

    @classmethod
    def of(cls, sweep: Mapping[str, Any] | None) -> SweepSpec:
        sweep = sweep or {}
        factors = {str(k): tuple(_as_list(v)) for k, v in (sweep.get("factors") or {}).items()}
        return cls(
            factors,
            tuple(sweep.get("exclude") or ()),
            str(sweep.get("mode", "product")),
            str(sweep.get("impossible", "refuse")),
            sweep.get("name"),
        )

    @property
    def settings(self) -> dict[str, str]:
        """Swept settings: column -> `group.key` (limit_side_len -> resize.limit_side_len)."""
        return {setting_column(k): k for k in self.factors if "." in k}


def _as_list(v: Any) -> list[Any]:
    return [v] if isinstance(v, str | int | float | bool) else list(v)


def pick(option: Mapping[str, Any], key: str, card: Mapping[str, Any], default: Any = None):
    """Option's own setting if it has one (not null), else the model card's, else default."""
    value = option.get(key)
    if value is None:
        value = card.get(key)
    return default if value is None else value


NOT_VARIANT_OPTIONS = {"name", "requires", "extra", "options"}


def option_settings(option: Mapping[str, Any]) -> dict[str, Any]:
    """A precision or device option's settings that change the model (variant options)."""
    out = {k: v for k, v in option.items() if k not in NOT_VARIANT_OPTIONS}
    out.update(option.get("options") or {})
    return out


def _runtime_missing(what: str, requires, extra: str) -> str | None:
    absent = [m for m in requires if importlib.util.find_spec(m) is None]
    if absent:
        return f"{what} needs {', '.join(absent)}: pip install 'evalharness[{extra}]'"
    return None


def _source_refused(source: str, backend: str) -> str:
    """`a onnx model cannot run on torch`, and the setting that fixes it."""
    runs = [n for n, cls in BACKENDS.items() if source in cls.capabilities.sources]
    own = OWN_RUNTIME.get(source)
    fix = f"backend={own}" if own else f"backend={runs[0]}" if runs else ""
    also = f" (runs on {', '.join(runs)})" if runs else ""
    return f"a {source} model cannot run on {backend}: set {fix}{also}" if fix else (
        f"a {source} model cannot run on {backend}")  # fmt: skip


def _backend_problem(options: dict[str, Option], model: ModelSpec) -> str | None:
    """Why the backend cannot run this variant: its declared capabilities and rules."""
    name = options["backend"]["name"]
    backend = BACKENDS.get(name)()
    caps = backend.capabilities
    placement = options["norm"]["placement"]
    precision = options["precision"]["name"]
    device = options["device"]["name"]
    checks = [
        (any(s in caps.sources for s in model.sources), _source_refused(model.source, name)),
        (placement in caps.placements, f"norm '{placement}' is not available on {name}"),
        (
            precision in caps.precisions,
            f"precision '{precision}' not on {name} ({', '.join(caps.precisions)})",
        ),
        (device in caps.devices, f"device '{device}' not on {name} ({', '.join(caps.devices)})"),
    ]
    for ok, why in checks:
        if not ok:
            return why
    why = backend.refuses(placement, precision, device, model.source) or caps.missing(name)
    # a declared device this machine does not have: named at planning, before the run dir
    if not why and device != "cpu":
        why = backend.device_missing(device)
    return why


def _stage_problem(stage: Stage, choices, options: dict[str, Option]) -> str | None:
    backend = options["backend"]["name"]
    if stage.kind == "decode":
        info = DECODERS.get(stage.spec.library)
        return _runtime_missing(f"decoder '{info.name}'", info.caps.requires, info.caps.extra)
    if stage.kind != "resize":
        return None
    info = RESIZERS.get(stage.spec.library)
    why = _runtime_missing(f"resize '{info.name}'", info.requires, info.extra)
    if not why and info.backends and backend not in info.backends:
        why = (
            f"resize '{choices['resize']}' resamples inside the model: only on "
            f"backend {' or '.join(info.backends)}"
        )
    if not why and info.in_model and options["precision"].get("calibrate"):
        why = (
            f"precision '{options['precision']['name']}' calibrates on host tensors of the "
            f"model's size; resize '{choices['resize']}' leaves the resize to the model"
        )
    return why


def check_capabilities(choices, options: dict[str, Option], model: ModelSpec, stages):
    """Why this combination cannot run, from the declarations; None when it can."""
    why = _backend_problem(options, model)
    if why:
        return why
    prec = options["precision"]
    why = _runtime_missing(
        f"precision '{prec['name']}'", prec.get("requires") or (), prec.get("extra") or prec["name"]
    )
    for stage in stages:
        why = why or _stage_problem(stage, choices, options)
    return why


def build_stages(options: dict[str, Option], card: Mapping[str, Any], model: ModelSpec):
    dec, rsz, col = options["decoder"], options["resize"], options["colour"]
    norm, ms = options["norm"], options["meanstd"]
    mean = tuple(float(v) for v in pick(ms, "mean", card))
    std = tuple(float(v) for v in pick(ms, "std", card))
    stages = build_pipeline(
        DecodeSpec(dec["library"], dec["exif"], dec["alpha"], int(dec["reduce"])),
        ResizeSpec(
            rsz["library"],
            rsz["interpolation"],
            size=model.input_hw,
            antialias=bool(rsz["antialias"]),
            crop=pick(rsz, "crop", card),
            crop_pct=float(pick(rsz, "crop_pct", card, 0.875)),
            swap_hw=bool(rsz.get("swap_hw", False)),
            pad_value=int(pick(rsz, "pad_value", card, 0)),
            limit_side_len=int(pick(rsz, "limit_side_len", card, 0)),
            multiple=int(pick(rsz, "multiple", card, 32)),
            anchor=str(pick(rsz, "anchor", card, "center")),
        ),
        ColourSpec(col["order"]),
        HostNormSpec(norm["placement"], mean, std),
    )
    return stages, mean, std


def in_model_resize(stages) -> dict[str, str]:
    """A resize the model does itself (ov_ppp_*): the variant option that asks for it."""
    spec = next(s.spec for s in stages if s.kind == "resize")
    key = RESIZERS.get(spec.library).in_model
    return {key: spec.interpolation} if key else {}


def explicit_factors(overrides: list[str], groups: tuple[str, ...] = FACTORS) -> set[str]:
    """Factors the user set on the command line (`resize=...`, `decoder.exif=...`)."""
    out = set()
    for o in overrides:
        key = o.lstrip("+~").split("=", 1)[0].split(".", 1)[0].split("/", 1)[0]
        if key in groups:
            out.add(key)
    return out


def describe(choices: Mapping[str, str]) -> str:
    """`backend=torch ... precision=fp32` (and a task's own factors after them)."""
    extra = [f for f in choices if f not in FACTORS and f != stacks.STACK and "." not in f]
    return " ".join(f"{f}={choices[f]}" for f in (*FACTORS, *extra) if f in choices)


def _config_id(model: ModelSpec, factors, stages, variant: ModelVariant) -> str:
    """Stable across runs and machines; changes when any resolved setting changes."""
    payload = [
        model.name,
        model.weights_sha256,
        list(factors),
        [repr(s) for s in stages],
        variant.placement,
        variant.precision,
        variant.device,
        [list(kv) for kv in variant.options],
    ]
    return hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()[:12]


def _matches(choices: Mapping[str, str], rule: Mapping[str, Any]) -> bool:
    """An exclusion rule matches when every factor it names has one of its listed values."""
    for factor, allowed in rule.items():
        if choices.get(factor) not in [str(a) for a in _as_list(allowed)]:
            return False
    return True


MODES = ("product", "one_at_a_time")
NOT_SET = "-"  # a swept setting the option does not have (fp32 has no calibration_method)


def setting_column(key: str) -> str:
    """`resize.limit_side_len` -> the column `limit_side_len`."""
    return key.split(".", 1)[1]


def _check_factor_names(factors: Mapping[str, Any], groups: tuple[str, ...] = FACTORS) -> None:
    for f in factors:
        if f == stacks.STACK:
            continue
        group = f.split(".", 1)[0]
        if group not in groups:
            raise PlanError(unknown_choice_message("sweep factor", group, list(groups)))
        if "." in f and f.count(".") != 1:
            raise PlanError(f"sweep factor '{f}': use group.setting (one dot)")


def assignments(
    factors: Mapping[str, tuple], base: Mapping[str, str], mode: str, groups=FACTORS
) -> Iterator:
    """The factor assignments a sweep evaluates.

    product:       every combination of the listed values;
    one_at_a_time: the base config, then each listed value alone with everything else at
                   the base (the accuracy of each factor value against the reference).
    """
    if mode not in MODES:
        raise PlanError(unknown_choice_message("sweep mode", str(mode), list(MODES)))
    keys = [f for f in (stacks.STACK, *groups) if f in factors] + [f for f in factors if "." in f]
    if mode == "product":
        grid = [[(f, str(v)) for v in factors[f]] for f in keys]
        yield from itertools.product(*grid)
        return
    yield ()
    for f in keys:
        for v in factors[f]:
            if str(v) != base.get(f):
                yield ((f, str(v)),)


@dataclass
class Planner:
    """Turns factor assignments into RunSpecs for one model, card and base config."""

    store: OptionStore
    model: ModelSpec
    card: Mapping[str, Any]
    base_choices: Mapping[str, str]
    base_options: Mapping[str, Option]
    threads: int
    calibration_key: str = ""
    base_stack: str = ""  # the command line's `stack=NAME` ('' for none)
    task_factors: tuple[str, ...] = ()  # the model's task's own factor groups (tile)
    # the dataset's degradation (plain data): a host stage that makes each model input
    # from its clean file, after normalize (preprocess/degrade.py); None for most sets
    degradation: Mapping[str, Any] | None = None

    @property
    def factors(self) -> tuple[str, ...]:
        return (*FACTORS, *self.task_factors)

    def option(self, group: str, name: str) -> Option:
        return self.store.load(group, name)

    def resolve(self, choices, options: dict[str, Option], settings=()) -> RunSpec:
        """One assignment of factor values -> a RunSpec; PlanError if impossible."""
        BACKENDS.get(options["backend"]["name"])
        check_precision_settings(options["precision"]["name"], options["precision"])
        try:
            stages, mean, std = build_stages(options, self.card, self.model)
            if self.degradation:
                stages = (
                    *stages,
                    Stage("degrade", degrade_spec(self.degradation, options["resize"])),
                )
        except (ValueError, UnknownNameError) as e:
            raise PlanError(f"{describe(choices)}: {e}") from None
        why = check_capabilities(choices, options, self.model, stages)
        if why:
            raise PlanError(f"{describe(choices)}: {why}")
        prec, dev = options["precision"], options["device"]
        variant_options = option_settings(prec)
        variant_options.update(option_settings(dev))
        variant_options.update(in_model_resize(stages))
        for group in self.task_factors:  # the task's own factors change how the model runs
            settings_of = option_settings(options[group])
            variant_options.update({f"{group}.{k}": v for k, v in settings_of.items()})
        if variant_options.get("calibrate"):
            # a quantized model depends on the images it calibrated on *and* their preprocessing
            variant_options["calibration_key"] = self.calibration_key
            variant_options["pipeline"] = hashlib.sha256(repr(stages).encode()).hexdigest()[:16]
        variant = ModelVariant(
            self.model,
            options["backend"]["name"],
            options["norm"]["placement"],
            mean,
            std,
            prec["name"],
            self.threads,
            dev["name"],
            tuple(sorted(variant_options.items())),
        )
        factors = tuple((f, choices[f]) for f in self.factors) + tuple(settings)
        return RunSpec(_config_id(self.model, factors, stages, variant), factors, stages, variant)

    def options_for(self, choices, listed, settings: Mapping[str, Any]) -> dict[str, Option]:
        """Each factor's option, with the swept settings applied where the option has them.

        A setting applies only to the options that have it: sweeping
        `precision.calibration_method` next to fp32 changes the int8 configs and leaves fp32
        as it is (its column reads "-"). The value "-" keeps the option's own setting."""
        options = {
            f: self.option(f, choices[f]) if f in listed else dict(self.base_options[f])
            for f in self.factors
        }
        for key, value in settings.items():
            group, name = key.split(".", 1)
            if name not in options[group] or str(value) == NOT_SET:
                continue
            options[group] = {**options[group], name: value}
        return options

    def setting_columns(self, factors: Mapping[str, Any], options) -> tuple:
        """The value each swept setting resolved to (the option's, else the card's)."""
        out = []
        for key in (k for k in factors if "." in k):
            group, name = key.split(".", 1)
            opt = options[group]
            value = str(pick(opt, name, self.card)) if name in opt else NOT_SET
            out.append((setting_column(key), value))
        return tuple(out)

    def expand(self, sweep: SweepSpec) -> tuple[list[RunSpec], list[str]]:
        """All configs of the sweep (or the one base config), plus the model card's reference;
        and the impossible combinations a `skip` sweep leaves out (one line each)."""
        factors = sweep.factors
        _check_factor_names(factors, self.factors)
        has: dict[str, set[str]] = {}  # group -> every setting its options here have
        specs, impossible, seen = [], [], set()
        for combo in assignments(factors, self.base_choices, sweep.mode, self.factors):
            assigned = dict(combo)
            try:
                stack, stacked = stacks.unfold(assigned, self.base_stack, self.store)
            except stacks.StackError as e:
                impossible.append(f"{' '.join(f'{k}={v}' for k, v in assigned.items())}: {e}")
                continue
            named = {k: v for k, v in assigned.items() if "." not in k and k != stacks.STACK}
            choices = {**self.base_choices, **stacked, **named}
            # values as the sweep wrote them (strings: "960", "-"); each setting's reader
            # converts (int(limit_side_len)), as Hydra left them before
            settings = {k: v for k, v in assigned.items() if "." in k}
            if any(
                _matches({**choices, **assigned, stacks.STACK: stack}, r) for r in sweep.exclude
            ):
                continue
            options = self.options_for(choices, {*factors, *stacked}, settings)
            for group in {k.split(".", 1)[0] for k in settings}:
                has.setdefault(group, set()).update(map(str, options[group]))
            try:
                spec = self.resolve(choices, options, self.setting_columns(factors, options))
            except PlanError as e:
                impossible.append(str(e))
                continue
            if spec.config_id not in seen:
                seen.add(spec.config_id)
                specs.append(replace(spec, stack=stack))
        _check_settings_exist(factors, has)
        skipped = _impossible(impossible, sweep)
        if not specs:
            raise PlanError("the sweep selects no config (every combination was excluded)")
        return self.with_reference(specs, factors), skipped

    def reference_choices(self) -> dict[str, str]:
        """The model card's reference, completed: what every config's agreement is against.

        Factors the card does not name take the defaults (fp32, cpu, host normalization, the
        card's mean/std) and, for the backend, the first (by reference_rank) that runs the
        model's source."""
        ref = {str(k): str(v) for k, v in (self.card.get("reference") or {}).items()}
        for f, v in REFERENCE_DEFAULTS.items():
            ref.setdefault(f, v)
        own = OWN_RUNTIME.get(self.model.source)
        if "backend" not in ref and own in BACKENDS.names():
            ref["backend"] = own  # a model file's own runtime (an ONNX file: onnxruntime)
        if "backend" not in ref:
            ranked = sorted(BACKENDS.items(), key=lambda kv: kv[1].capabilities.reference_rank)
            for name, cls in ranked:
                if self.model.source in cls.capabilities.sources:
                    ref["backend"] = name
                    break
        return {f: ref.get(f, self.base_choices[f]) for f in self.factors}

    def with_reference(self, specs: list[RunSpec], factors) -> list[RunSpec]:
        """Mark the model card's reference config, adding it when the sweep lacks it."""
        choices = self.reference_choices()
        options = {f: self.option(f, choices[f]) for f in self.factors}
        try:
            ref = self.resolve(choices, options, self.setting_columns(factors, options))
        except PlanError:
            return specs  # the reference cannot run here (no runtime for it): no agree_ref
        out = [replace(s, is_reference=s.config_id == ref.config_id) for s in specs]
        if not any(s.is_reference for s in out):
            out.append(replace(ref, is_reference=True))
        return out


def _check_settings_exist(factors, has: dict[str, set[str]]) -> None:
    for key in (k for k in factors if "." in k):
        group, name = key.split(".", 1)
        if group in has and name not in has[group]:  # a typo: no option here has it
            raise PlanError(
                f"sweep factor '{key}': no option of {group} in this sweep has a setting "
                f"'{name}' (they have {', '.join(sorted(has[group]))})"
            )


def _impossible(impossible: list[str], sweep: SweepSpec) -> list[str]:
    """What a sweep may leave out (`impossible: skip`), or the refusal of the whole plan."""
    if impossible and not sweep.factors:  # a single config: its one reason, on one line
        raise PlanError(impossible[0])
    if not impossible or sweep.impossible == "skip":
        return [f"skipped (cannot run): {why}" for why in impossible]
    head = "\n  ".join(impossible[:10])
    more = f"\n  ... and {len(impossible) - 10} more" if len(impossible) > 10 else ""
    raise PlanError(
        f"{len(impossible)} impossible combination(s); remove them with the sweep's "
        f"'exclude' list:\n  {head}{more}"
    )


def canonical_settings(
    config: Mapping[str, str], settings: Mapping[str, str], card, store: OptionStore
) -> dict[str, str]:
    """A config's swept-setting columns as the plan writes them: "-" where the config's
    option has no such setting (fp32's calibration_method), the option's own value where
    "-" asks for it. Explain's coalitions mix the two sides' values; this names the row."""
    out = dict(config)
    for column, key in settings.items():
        group, name = key.split(".", 1)
        if column not in out or group not in out:
            continue
        opt = store.load(group, out[group])
        if name not in opt:
            out[column] = NOT_SET
        elif out[column] == NOT_SET:
            out[column] = str(pick(opt, name, card))
    return out
