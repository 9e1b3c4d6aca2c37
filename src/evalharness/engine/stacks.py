"""Named deployment stacks: `stack=NAME` sets several factors at once, as a deployment does.

    python -m evalharness stack=rust_tract
    python -m evalharness +sweep=... 'sweep.factors.stack=[python_cv2_ort,rust_tract]'

A stack is a shorthand, not a factor. conf/stack/NAME.yaml names a value for some factors
(decoder, resize, colour, backend, norm, ...); the configs it produces carry those real
values in their factor columns, so `explain --b ...` splits the gap between two stacks into
factors, and a config that mixes two stacks is an ordinary config (evaluated on demand).
The stack's name is recorded beside each config (RunSpec.stack, for configs.csv), never in
its identity: two stacks that resolve to the same factor values are the same config.

Precedence for each factor: the command line (`stack=rust_tract colour=bgr`) or a factor
the sweep lists > the stack > the model card's reference > the defaults. The model card
still supplies what belongs to the model: input size, crop policy, mean and std.

A stack whose backend is not available here (tract and ncnn come with their own backend
modules) is refused at planning with one line, unless the backend is set explicitly (on the
command line, or listed in the sweep): then the stack's preprocessing runs on that backend.
In a sweep a refused stack is one of the impossible combinations the plan lists.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf, open_dict

from evalharness import CONF_DIR
from evalharness.backends import BACKENDS
from evalharness.registry import FACTORS, UnknownNameError, unknown_choice_message

STACK = "stack"


class StackError(ValueError):
    """A stack that cannot be used here (unknown factor value, backend not available)."""


def stack_names() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / STACK).glob("*.yaml"))


def stack_factors(name: str) -> dict[str, str]:
    """The factor values stack `name` sets, each an existing option; StackError otherwise."""
    path = CONF_DIR / STACK / f"{name}.yaml"
    if not path.exists():
        raise UnknownNameError(unknown_choice_message(STACK, str(name), stack_names()))
    values = {str(k): str(v) for k, v in (OmegaConf.load(path).get("factors") or {}).items()}
    for factor, value in values.items():
        if factor not in FACTORS:
            raise StackError(f"stack '{name}': '{factor}' is not a factor ({', '.join(FACTORS)})")
        if factor != "backend" and not (CONF_DIR / factor / f"{value}.yaml").exists():
            raise StackError(f"stack '{name}': no option conf/{factor}/{value}.yaml")
    return values


def taken(name: str, values: dict[str, str], overridden) -> dict[str, str]:
    """The stack's values for the factors not overridden; a backend taken from the stack
    must exist here (tract and ncnn come with their own backend modules)."""
    out = {f: v for f, v in values.items() if f not in overridden}
    backend = out.get("backend")
    if backend is not None and backend not in BACKENDS:
        raise StackError(
            f"stack '{name}' needs backend '{backend}', which this installation does not "
            f"have (backends here: {', '.join(BACKENDS.names())})"
        )
    if backend is not None:
        missing = BACKENDS.get(backend).capabilities.missing(backend)
        if missing:
            raise StackError(f"stack '{name}' needs backend '{backend}': {missing}")
    return out


def base_stack(cfg: DictConfig) -> str:
    """The stack chosen on the command line (`stack=NAME`), or ''."""
    stack = cfg.get(STACK)
    return str(stack.name) if stack else ""


def apply_stack(
    cfg: DictConfig, choices: dict[str, str], explicit: set[str]
) -> tuple[dict[str, str], set[str]]:
    """`stack=NAME` on the command line: its factor values become the base choices (cfg is
    updated in place), except factors the user set explicitly. They count as explicit from
    then on, so the model card's reference does not override them."""
    name = base_stack(cfg)
    if not name:
        return choices, explicit
    values = stack_factors(name)
    choices = dict(choices)
    for factor, value in taken(name, values, explicit).items():
        with open_dict(cfg):
            cfg[factor] = OmegaConf.load(CONF_DIR / factor / f"{value}.yaml")
        choices[factor] = value
    return choices, explicit | set(values)


def unfold(assigned: dict[str, str], cfg: DictConfig) -> tuple[str, dict[str, str]]:
    """A sweep assignment that names a stack -> (stack name, the factor values it adds).

    Factors the assignment itself sets win over the stack's. Without a `stack` in the
    assignment, the configs belong to the command line's stack (already in the base).
    """
    name = assigned.get(STACK)
    if not name:
        return base_stack(cfg), {}
    return name, taken(name, stack_factors(name), assigned)
