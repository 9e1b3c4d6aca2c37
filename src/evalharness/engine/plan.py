"""Factor product -> run specs: one per evaluated config, each with its pipeline and variant.

A factor is a Hydra config group; its value is an option file name under conf/<group>/.
The base config (the defaults list plus command-line choices) supplies every factor a sweep
does not list. Precedence for each setting: sweep factor option > model card > default.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from evalharness import CONF_DIR
from evalharness.backends.base import BACKENDS, PRECISIONS, ModelVariant
from evalharness.models.source import SOURCE_BACKENDS, ModelSpec
from evalharness.preprocess.colour import ColourSpec, HostNormSpec
from evalharness.preprocess.decode import DecodeSpec
from evalharness.preprocess.pipeline import Stage, build_pipeline
from evalharness.preprocess.resize import ResizeSpec
from evalharness.registry import FACTORS, UnknownNameError, unknown_choice_message

# The factors, in the column order every CSV uses.

# Which precisions each backend can run (on CPU).
BACKEND_PRECISIONS = {
    "torch": ("fp32", "bf16"),
    "onnxruntime": ("fp32", "fp16"),
    "openvino": PRECISIONS,
}


class PlanError(ValueError):
    """The sweep cannot run as configured; raised before any work is done."""


def option_names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def load_option(group: str, name: str) -> DictConfig:
    path = CONF_DIR / group / f"{name}.yaml"
    if not path.exists():
        raise UnknownNameError(unknown_choice_message(group, str(name), option_names(group)))
    return OmegaConf.load(path)


@dataclass(frozen=True)
class RunSpec:
    """One config of a sweep: the factor values, its host pipeline and its model variant."""

    config_id: str
    factors: tuple[tuple[str, str], ...]
    stages: tuple[Stage, ...]
    variant: ModelVariant

    @property
    def factor_dict(self) -> dict[str, str]:
        return dict(self.factors)


def _pick(option: DictConfig, key: str, card: DictConfig) -> Any:
    """Option's own setting if it has one (not null), else the model card's."""
    value = option.get(key)
    return card[key] if value is None else value


def resolve(
    choices: dict[str, str],
    options: dict[str, DictConfig],
    model: ModelSpec,
    card: DictConfig,
    threads: int,
) -> RunSpec:
    """Turn one assignment of factor values into a RunSpec; raise PlanError if impossible."""
    dec, rsz, col = options["decoder"], options["resize"], options["colour"]
    norm, ms, prec = options["norm"], options["meanstd"], options["precision"]
    backend = options["backend"].name
    BACKENDS.get(backend)
    mean = tuple(float(v) for v in _pick(ms, "mean", card))
    std = tuple(float(v) for v in _pick(ms, "std", card))
    try:
        stages = build_pipeline(
            DecodeSpec(dec.library, dec.exif, dec.alpha, int(dec.reduce)),
            ResizeSpec(
                rsz.library,
                rsz.interpolation,
                size=int(card.input_size),
                antialias=bool(rsz.antialias),
                crop=_pick(rsz, "crop", card),
                crop_pct=float(_pick(rsz, "crop_pct", card)),
                swap_hw=bool(rsz.get("swap_hw", False)),
                pad_value=int(rsz.get("pad_value", 0)),
                limit_len=int(rsz.get("limit_len") or 0),
                multiple=int(rsz.get("multiple", 32)),
            ),
            ColourSpec(col.order),
            HostNormSpec(norm.placement, mean, std),
        )
    except (ValueError, UnknownNameError) as e:
        raise PlanError(f"{_describe(choices)}: {e}") from None
    if backend not in SOURCE_BACKENDS[model.source]:
        raise PlanError(f"{_describe(choices)}: a {model.source} model cannot run on {backend}")
    if model.source == "openvino" and norm.placement == "graph":
        raise PlanError(f"{_describe(choices)}: norm 'graph' needs an ONNX or torch model")
    if norm.placement == "ov_ppp" and backend != "openvino":
        raise PlanError(f"{_describe(choices)}: norm 'ov_ppp' needs backend=openvino")
    if prec.name not in BACKEND_PRECISIONS[backend]:
        ok = ", ".join(BACKEND_PRECISIONS[backend])
        raise PlanError(f"{_describe(choices)}: precision '{prec.name}' not on {backend} ({ok})")
    variant = ModelVariant(model, backend, norm.placement, mean, std, prec.name, threads)
    factors = tuple((f, choices[f]) for f in FACTORS)
    return RunSpec(_config_id(model, factors, stages, variant), factors, stages, variant)


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
    choices = dict(choices)
    reference = cfg.model.card.get("reference") or {}
    for factor, name in reference.items():
        if factor in FACTORS and factor not in explicit and choices.get(factor) != name:
            with open_dict(cfg):
                cfg[factor] = load_option(factor, str(name))
            choices[factor] = str(name)
    return choices


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
    ]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:12]


def _matches(choices: dict[str, str], rule: DictConfig | dict) -> bool:
    """An exclusion rule matches when every factor it names has one of its listed values."""
    for factor, allowed in rule.items():
        allowed = [allowed] if isinstance(allowed, str) else list(allowed)
        if choices.get(factor) not in allowed:
            return False
    return True


MODES = ("product", "one_at_a_time")


def assignments(factors: dict, base: dict[str, str], mode: str):
    """The factor assignments a sweep evaluates.

    product:       every combination of the listed values;
    one_at_a_time: the base config, then each listed value alone with everything else at
                   the base (the accuracy of each factor value against the reference).
    """
    if mode not in MODES:
        raise PlanError(unknown_choice_message("sweep mode", str(mode), list(MODES)))
    if mode == "product":
        grid = [[(f, str(v)) for v in factors[f]] for f in FACTORS if f in factors]
        yield from itertools.product(*grid)
        return
    yield ()
    for f in FACTORS:
        for v in factors.get(f, []):
            if str(v) != base.get(f):
                yield ((f, str(v)),)


def expand(cfg: DictConfig, base_choices: dict[str, str], model: ModelSpec) -> list[RunSpec]:
    """All configs of the sweep (or the one base config when no sweep is given)."""
    base_options = {f: cfg[f] for f in FACTORS}
    sweep = cfg.get("sweep") or {}
    factors = dict(sweep.get("factors") or {})
    for f in factors:
        if f not in FACTORS:
            raise PlanError(unknown_choice_message("sweep factor", f, list(FACTORS)))
    exclude = list(sweep.get("exclude") or [])
    specs, impossible, seen = [], [], set()
    for combo in assignments(factors, base_choices, sweep.get("mode", "product")):
        choices = {**base_choices, **dict(combo)}
        if any(_matches(choices, rule) for rule in exclude):
            continue
        options = {
            f: load_option(f, choices[f]) if f in factors else base_options[f] for f in FACTORS
        }
        try:
            spec = resolve(choices, options, model, cfg.model.card, int(cfg.threads))
        except PlanError as e:
            impossible.append(str(e))
            continue
        if spec.config_id not in seen:
            seen.add(spec.config_id)
            specs.append(spec)
    if impossible and not factors:  # a single config: its one reason, on one line
        raise PlanError(impossible[0])
    if impossible:
        head = "\n  ".join(impossible[:10])
        more = f"\n  ... and {len(impossible) - 10} more" if len(impossible) > 10 else ""
        raise PlanError(
            f"{len(impossible)} impossible combination(s); remove them with the sweep's "
            f"'exclude' list:\n  {head}{more}"
        )
    if not specs:
        raise PlanError("the sweep selects no config (every combination was excluded)")
    return specs
