"""Named deployment stacks: `stack=NAME` sets several factors at once, as a deployment does.

    evalharness stack=rust_tract
    evalharness +sweep=... 'sweep.factors.stack=[python_cv2_ort,rust_tract]'

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

from collections.abc import Mapping

from evalharness.backends.base import BACKENDS
from evalharness.config.store import OptionStore
from evalharness.registry import FACTORS

STACK = "stack"


class StackError(ValueError):
    """A stack that cannot be used here (unknown factor value, backend not available)."""


def stack_names(store: OptionStore) -> list[str]:
    return store.names(STACK)


def stack_factors(name: str, store: OptionStore) -> dict[str, str]:
    """The factor values stack `name` sets, each an existing option; StackError otherwise."""
    values = {str(k): str(v) for k, v in (store.load(STACK, name).get("factors") or {}).items()}
    for factor, value in values.items():
        if factor not in FACTORS:
            raise StackError(f"stack '{name}': '{factor}' is not a factor ({', '.join(FACTORS)})")
        if factor != "backend" and not store.has(factor, value):
            raise StackError(f"stack '{name}': no option conf/{factor}/{value}.yaml")
    return values


def taken(name: str, values: Mapping[str, str], overridden) -> dict[str, str]:
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


def apply_stack(
    name: str, choices: Mapping[str, str], explicit: set[str], store: OptionStore
) -> tuple[dict[str, str], set[str]]:
    """`stack=NAME` on the command line: its factor values become the base choices, except
    factors the user set explicitly. They count as explicit from then on, so the model
    card's reference does not override them."""
    if not name:
        return dict(choices), set(explicit)
    values = stack_factors(name, store)
    out = dict(choices)
    out.update(taken(name, values, explicit))
    return out, set(explicit) | set(values)


def unfold(assigned: Mapping[str, str], base_stack: str, store: OptionStore):
    """A sweep assignment that names a stack -> (stack name, the factor values it adds).

    Factors the assignment itself sets win over the stack's. Without a `stack` in the
    assignment, the configs belong to the command line's stack (already in the base).
    """
    name = assigned.get(STACK)
    if not name:
        return base_stack, {}
    return name, taken(name, stack_factors(name, store), assigned)
