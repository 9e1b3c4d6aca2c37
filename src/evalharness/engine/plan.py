"""Factor product -> run specs: one per evaluated config, each with its pipeline and variant.

A factor is a Hydra config group; its value is an option file name under conf/<group>/.
The base config (the defaults list plus command-line choices) supplies every factor a sweep
does not list. Precedence for each setting: sweep factor option > model card > default.

A sweep may also vary one setting of an option (`resize.limit_side_len: [736, 960]`): such a
setting is a column of its own (`limit_side_len`) and part of the config's identity.

What can run where is read from the declarations (backend Capabilities, decoder caps,
resizer info): an impossible combination is named here, before any work starts. The model
card's reference config, completed with backend/precision/device defaults, is always part
of the plan, so every config has an agreement with the reference.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import itertools
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from evalharness import CONF_DIR
from evalharness.backends import BACKENDS
from evalharness.backends.base import ModelVariant
from evalharness.backends.quantize import check_precision_settings
from evalharness.engine import stacks
from evalharness.models.source import ModelSpec
from evalharness.preprocess.colour import ColourSpec, HostNormSpec
from evalharness.preprocess.decode import DECODERS, DecodeSpec
from evalharness.preprocess.pipeline import Stage, build_pipeline
from evalharness.preprocess.resize import RESIZERS, ResizeSpec
from evalharness.registry import FACTORS, UnknownNameError, unknown_choice_message

# Backends tried, in order, when a model card's reference does not name one.
REFERENCE_BACKENDS = ("torch", "onnxruntime", "openvino", "tract", "ncnn", "litert")
REFERENCE_DEFAULTS = {"precision": "fp32", "device": "cpu", "norm": "host", "meanstd": "card"}


class PlanError(ValueError):
    """The sweep cannot run as configured; raised before any work is done."""


def option_names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def load_option(group: str, name: str) -> DictConfig:
    path = CONF_DIR / group / f"{name}.yaml"
    if not path.exists():
        raise UnknownNameError(unknown_choice_message(group, str(name), option_names(group)))
    return _load_option(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=512)
def _load_option(path: Path, mtime_ns: int) -> DictConfig:
    """Parsed once per file version: a 4,800-config plan reads each option file once, not
    once per config. Read-only, since every caller shares it."""
    option = OmegaConf.load(path)
    OmegaConf.set_readonly(option, True)
    return option


@dataclass(frozen=True)
class RunSpec:
    """One config of a sweep: the factor values, its host pipeline and its model variant."""

    config_id: str
    factors: tuple[tuple[str, str], ...]  # FACTORS, then any swept settings (limit_side_len)
    stages: tuple[Stage, ...]
    variant: ModelVariant
    is_reference: bool = False
    stack: str = ""  # the named stack that set its factors (engine/stacks.py); not identity

    @property
    def factor_dict(self) -> dict[str, str]:
        return dict(self.factors)


def _pick(option: DictConfig, key: str, card: DictConfig, default: Any = None) -> Any:
    """Option's own setting if it has one (not null), else the model card's, else default."""
    value = option.get(key)
    if value is None:
        value = card.get(key)
    return default if value is None else value


NOT_VARIANT_OPTIONS = {"name", "requires", "extra", "options"}


def option_settings(option: DictConfig) -> dict[str, Any]:
    """A precision or device option's settings that change the model (variant options)."""
    out = {k: v for k, v in option.items() if k not in NOT_VARIANT_OPTIONS}
    out.update(option.get("options") or {})
    return out


def _runtime_missing(what: str, requires, extra: str) -> str | None:
    absent = [m for m in requires if importlib.util.find_spec(m) is None]
    if absent:
        return f"{what} needs {', '.join(absent)}: pip install 'evalharness[{extra}]'"
    return None


def check_capabilities(
    choices: dict[str, str], options: dict[str, DictConfig], model: ModelSpec, stages
) -> str | None:
    """Why this combination cannot run, from the declarations; None when it can."""
    backend = options["backend"].name
    caps = BACKENDS.get(backend).capabilities
    placement = options["norm"].placement
    precision = options["precision"].name
    device = options["device"].name
    checks = [
        (model.source in caps.sources, f"a {model.source} model cannot run on {backend}"),
        (placement in caps.placements, f"norm '{placement}' is not available on {backend}"),
        (
            precision in caps.precisions,
            f"precision '{precision}' not on {backend} ({', '.join(caps.precisions)})",
        ),
        (device in caps.devices, f"device '{device}' not on {backend} ({', '.join(caps.devices)})"),
        (
            not (model.source == "openvino" and placement == "graph"),
            "norm 'graph' needs an ONNX or torch model",
        ),
    ]
    for ok, why in checks:
        if not ok:
            return why
    backend_cls = BACKENDS.get(backend)
    rule = getattr(backend_cls, "refuses", None)  # combinations a flat table cannot say
    why = rule(placement=placement, precision=precision, device=device) if rule else None
    if why:
        return why
    missing = caps.missing(backend)
    if missing:
        return missing
    # a declared device this machine does not have: named at planning, before the run dir
    absent = getattr(backend_cls, "device_missing", None)
    why = absent(device) if absent and device != "cpu" else None
    if why:
        return why
    prec = options["precision"]
    why = _runtime_missing(f"precision '{precision}'", prec.get("requires") or (),
                           prec.get("extra") or precision)  # fmt: skip
    if why:
        return why
    for stage in stages:
        if stage.kind == "decode":
            info = DECODERS.get(stage.spec.library)
            why = _runtime_missing(f"decoder '{info.name}'", info.caps.requires, info.caps.extra)
        elif stage.kind == "resize":
            info = RESIZERS.get(stage.spec.library)
            why = _runtime_missing(f"resize '{info.name}'", info.requires, info.extra)
            if not why and info.backends and backend not in info.backends:
                why = (
                    f"resize '{choices['resize']}' resamples inside the model: only on "
                    f"backend {' or '.join(info.backends)}"
                )
            if not why and info.in_model and options["precision"].get("calibrate"):
                why = (
                    f"precision '{precision}' calibrates on host tensors of the model's size; "
                    f"resize '{choices['resize']}' leaves the resize to the model"
                )
        else:
            why = None
        if why:
            return why
    return None


def build_stages(options: dict[str, DictConfig], card: DictConfig, model: ModelSpec):
    dec, rsz, col = options["decoder"], options["resize"], options["colour"]
    norm, ms = options["norm"], options["meanstd"]
    mean = tuple(float(v) for v in _pick(ms, "mean", card))
    std = tuple(float(v) for v in _pick(ms, "std", card))
    stages = build_pipeline(
        DecodeSpec(dec.library, dec.exif, dec.alpha, int(dec.reduce)),
        ResizeSpec(
            rsz.library,
            rsz.interpolation,
            size=model.input_hw,
            antialias=bool(rsz.antialias),
            crop=_pick(rsz, "crop", card),
            crop_pct=float(_pick(rsz, "crop_pct", card, 0.875)),
            swap_hw=bool(rsz.get("swap_hw", False)),
            pad_value=int(_pick(rsz, "pad_value", card, 0)),
            limit_side_len=int(_pick(rsz, "limit_side_len", card, 0)),
            multiple=int(_pick(rsz, "multiple", card, 32)),
            anchor=str(_pick(rsz, "anchor", card, "center")),
        ),
        ColourSpec(col.order),
        HostNormSpec(norm.placement, mean, std),
    )
    return stages, mean, std


def resolve(
    choices: dict[str, str],
    options: dict[str, DictConfig],
    model: ModelSpec,
    card: DictConfig,
    threads: int,
    settings: tuple[tuple[str, str], ...] = (),
    calibration_key: str = "",
) -> RunSpec:
    """Turn one assignment of factor values into a RunSpec; raise PlanError if impossible."""
    BACKENDS.get(options["backend"].name)
    check_precision_settings(options["precision"].name, options["precision"])
    try:
        stages, mean, std = build_stages(options, card, model)
    except (ValueError, UnknownNameError) as e:
        raise PlanError(f"{_describe(choices)}: {e}") from None
    why = check_capabilities(choices, options, model, stages)
    if why:
        raise PlanError(f"{_describe(choices)}: {why}")
    prec, dev = options["precision"], options["device"]
    variant_options = option_settings(prec)
    variant_options.update(option_settings(dev))
    variant_options.update(in_model_resize(stages))
    if variant_options.get("calibrate"):
        # a quantized model depends on the images it calibrated on *and* their preprocessing
        variant_options["calibration_key"] = calibration_key
        variant_options["pipeline"] = hashlib.sha256(repr(stages).encode()).hexdigest()[:16]
    variant = ModelVariant(
        model,
        options["backend"].name,
        options["norm"].placement,
        mean,
        std,
        prec.name,
        threads,
        dev.name,
        tuple(sorted(variant_options.items())),
    )
    factors = tuple((f, choices[f]) for f in FACTORS) + settings
    return RunSpec(_config_id(model, factors, stages, variant), factors, stages, variant)


def in_model_resize(stages) -> dict[str, str]:
    """A resize the model does itself (ov_ppp_*): the variant option that asks for it."""
    spec = next(s.spec for s in stages if s.kind == "resize")
    key = RESIZERS.get(spec.library).in_model
    return {key: spec.interpolation} if key else {}


def explicit_factors(overrides: list[str]) -> set[str]:
    """Factors the user set on the command line (`resize=...`, `decoder.exif=...`)."""
    out = set()
    for o in overrides:
        key = o.lstrip("+~").split("=", 1)[0].split(".", 1)[0].split("/", 1)[0]
        if key in FACTORS:
            out.add(key)
    return out


def apply_model_card(
    cfg: DictConfig, choices: dict[str, str], explicit: set[str]
) -> dict[str, str]:
    """Precedence for the base pipeline: command line > model card reference > defaults.

    The card's `reference` names the options the model was trained with; any factor the
    user did not set explicitly takes them (cfg is updated in place).
    """
    choices, explicit = stacks.apply_stack(cfg, choices, explicit)  # `stack=NAME`
    choices = dict(choices)
    reference = cfg.model.card.get("reference") or {}
    for factor, name in reference.items():
        if factor in FACTORS and factor not in explicit and choices.get(factor) != name:
            with open_dict(cfg):
                cfg[factor] = load_option(factor, str(name))
            choices[factor] = str(name)
    return choices


def reference_choices(cfg: DictConfig, model: ModelSpec) -> dict[str, str]:
    """The model card's reference, completed: what every config's agreement is against.

    Factors the card does not name take the defaults (fp32, cpu, host normalization, the
    card's mean/std) and, for the backend, the first one that runs the model's source.
    """
    ref = {str(k): str(v) for k, v in (cfg.model.card.get("reference") or {}).items()}
    for f, v in REFERENCE_DEFAULTS.items():
        ref.setdefault(f, v)
    if "backend" not in ref:
        for b in REFERENCE_BACKENDS:
            if b in BACKENDS and model.source in BACKENDS.get(b).capabilities.sources:
                ref["backend"] = b
                break
    return ref


def _describe(choices: dict[str, str]) -> str:
    return " ".join(f"{f}={choices[f]}" for f in FACTORS if f in choices)


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


def _matches(choices: dict[str, str], rule: DictConfig | dict) -> bool:
    """An exclusion rule matches when every factor it names has one of its listed values."""
    for factor, allowed in rule.items():
        allowed = [allowed] if isinstance(allowed, str | int | float) else list(allowed)
        if choices.get(factor) not in [str(a) for a in allowed]:
            return False
    return True


MODES = ("product", "one_at_a_time")


def setting_column(key: str) -> str:
    """`resize.limit_side_len` -> the column `limit_side_len`."""
    return key.split(".", 1)[1]


def _check_factor_names(factors: dict) -> None:
    for f in factors:
        group = f.split(".", 1)[0]
        if group not in FACTORS:
            raise PlanError(unknown_choice_message("sweep factor", group, list(FACTORS)))
        if "." in f and f.count(".") != 1:
            raise PlanError(f"sweep factor '{f}': use group.setting (one dot)")


def assignments(factors: dict, base: dict[str, str], mode: str):
    """The factor assignments a sweep evaluates.

    product:       every combination of the listed values;
    one_at_a_time: the base config, then each listed value alone with everything else at
                   the base (the accuracy of each factor value against the reference).
    """
    if mode not in MODES:
        raise PlanError(unknown_choice_message("sweep mode", str(mode), list(MODES)))
    keys = [f for f in (stacks.STACK, *FACTORS) if f in factors] + [f for f in factors if "." in f]
    if mode == "product":
        grid = [[(f, str(v)) for v in factors[f]] for f in keys]
        yield from itertools.product(*grid)
        return
    yield ()
    for f in keys:
        for v in factors[f]:
            if str(v) != base.get(f):
                yield ((f, str(v)),)


NOT_SET = "-"  # a swept setting the option does not have (fp32 has no calibration_method)


def _options_for(choices, factors, base_options, settings) -> dict[str, DictConfig]:
    """Each factor's option, with the swept settings applied where the option has them.

    A setting applies only to the options that have it: sweeping
    `precision.calibration_method` next to fp32 changes the int8 configs and leaves fp32
    as it is (its column reads "-"). The value "-" keeps the option's own setting."""
    options = {f: load_option(f, choices[f]) if f in factors else base_options[f] for f in FACTORS}
    for key, value in settings.items():
        group, name = key.split(".", 1)
        if name not in options[group] or str(value) == NOT_SET:
            continue
        opt = OmegaConf.create(OmegaConf.to_container(options[group]))
        opt[name] = value
        options[group] = opt
    return options


def canonical_settings(config: dict[str, str], settings: dict[str, str], card) -> dict[str, str]:
    """A config's swept-setting columns as the plan writes them: "-" where the config's
    option has no such setting (fp32's calibration_method), the option's own value where
    "-" asks for it. Explain's coalitions mix the two sides' values; this names the row."""
    out = dict(config)
    for column, key in settings.items():
        group, name = key.split(".", 1)
        if column not in out or group not in out:
            continue
        opt = load_option(group, out[group])
        if name not in opt:
            out[column] = NOT_SET
        elif out[column] == NOT_SET:
            out[column] = str(_pick(opt, name, card))
    return out


def _parse(value: str) -> Any:
    """A swept setting's value as YAML would read it (960 -> int, true -> bool)."""
    return OmegaConf.create({"v": value}).v


def expand(
    cfg: DictConfig, base_choices: dict[str, str], model: ModelSpec, calibration_key: str = ""
) -> list[RunSpec]:
    """All configs of the sweep (or the one base config), plus the model card's reference.

    `calibration_key` names the calibration set quantizing configs calibrate on."""
    base_options = {f: cfg[f] for f in FACTORS}
    sweep = cfg.get("sweep") or {}
    factors = dict(sweep.get("factors") or {})
    _check_factor_names({k: v for k, v in factors.items() if k != stacks.STACK})
    exclude = list(sweep.get("exclude") or [])
    has: dict[str, set[str]] = {}  # group -> every setting its options here have
    specs, impossible, seen = [], [], set()
    threads = int(cfg.threads)
    for combo in assignments(factors, base_choices, sweep.get("mode", "product")):
        assigned = dict(combo)
        try:
            stack, stacked = stacks.unfold(assigned, cfg)
        except stacks.StackError as e:
            impossible.append(f"{' '.join(f'{k}={v}' for k, v in assigned.items())}: {e}")
            continue
        named = {k: v for k, v in assigned.items() if "." not in k and k != stacks.STACK}
        choices = {**base_choices, **stacked, **named}
        settings = {k: _parse(v) for k, v in assigned.items() if "." in k}
        if any(_matches({**choices, **assigned, stacks.STACK: stack}, r) for r in exclude):
            continue
        options = _options_for(choices, {*factors, *stacked}, base_options, settings)
        for group in {k.split(".", 1)[0] for k in settings}:
            has.setdefault(group, set()).update(map(str, options[group].keys()))
        columns = setting_columns(factors, options, cfg.model.card)
        try:
            spec = resolve(
                choices, options, model, cfg.model.card, threads, columns, calibration_key
            )
        except PlanError as e:
            impossible.append(str(e))
            continue
        spec = replace(spec, stack=stack)
        if spec.config_id not in seen:
            seen.add(spec.config_id)
            specs.append(spec)
    for key in (k for k in factors if "." in k):
        group, name = key.split(".", 1)
        if group in has and name not in has[group]:  # a typo: no option here has it
            raise PlanError(
                f"sweep factor '{key}': no option of {group} in this sweep has a setting "
                f"'{name}' (they have {', '.join(sorted(has[group]))})"
            )
    if impossible and not factors:  # a single config: its one reason, on one line
        raise PlanError(impossible[0])
    if impossible and sweep.get("impossible", "refuse") == "skip":
        # the sweep asked to run what can run: say what it leaves out, once, up front
        for why in impossible:
            print(f"skipped (cannot run): {why}", file=sys.stderr)
    elif impossible:
        head = "\n  ".join(impossible[:10])
        more = f"\n  ... and {len(impossible) - 10} more" if len(impossible) > 10 else ""
        raise PlanError(
            f"{len(impossible)} impossible combination(s); remove them with the sweep's "
            f"'exclude' list:\n  {head}{more}"
        )
    if not specs:
        raise PlanError("the sweep selects no config (every combination was excluded)")
    return with_reference(specs, cfg, model, factors, base_choices)


def setting_columns(factors: dict, options: dict[str, DictConfig], card) -> tuple:
    """The value each swept setting resolved to (the option's, else the card's): a column."""
    out = []
    for key in (k for k in factors if "." in k):
        group, name = key.split(".", 1)
        opt = options[group]
        out.append((setting_column(key), str(_pick(opt, name, card)) if name in opt else NOT_SET))
    return tuple(out)


def with_reference(
    specs: list[RunSpec], cfg, model: ModelSpec, factors: dict, base: dict[str, str]
) -> list[RunSpec]:
    """Mark the model card's reference config, adding it when the sweep lacks it."""
    ref = reference_choices(cfg, model)
    choices = {f: ref.get(f, base[f]) for f in FACTORS}
    options = {f: load_option(f, choices[f]) for f in FACTORS}
    columns = setting_columns(factors, options, cfg.model.card)
    try:
        ref_spec = resolve(choices, options, model, cfg.model.card, int(cfg.threads), columns)
    except PlanError:
        return specs  # the reference cannot run here (no runtime for it): no agree_ref
    out = []
    found = False
    for s in specs:
        same = s.config_id == ref_spec.config_id
        found |= same
        out.append(replace(s, is_reference=same))
    if not found:
        out.append(replace(ref_spec, is_reference=True))
    return out
