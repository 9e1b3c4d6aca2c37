"""`python -m evalharness [group=option ...] [+sweep=NAME]`: evaluate a config or a sweep."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from evalharness import CONF_DIR
from evalharness.registry import unknown_choice_message


def check_group_choices(argv: list[str]) -> str | None:
    """One readable line for `group=unknown`, before Hydra prints its multi-line error."""
    for arg in argv:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.split("=", 1)
        group = key.lstrip("+~")
        folder = CONF_DIR / group
        if "." in group or "/" in group or not folder.is_dir():
            continue
        names = sorted(p.stem for p in folder.glob("*.yaml"))
        for v in value.split(","):  # multirun lists: backend=torch,onnxruntime
            if v and v not in names:
                return unknown_choice_message(group, v, names)
    return None


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    from evalharness.app import run_from_hydra  # heavy imports after Hydra parsed the args

    run_from_hydra(cfg)


def main() -> None:
    problem = check_group_choices(sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    _hydra_main()


if __name__ == "__main__":
    main()
