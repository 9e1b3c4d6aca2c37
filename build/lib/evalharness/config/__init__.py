"""Overrides -> one frozen RunPlan, once: Hydra composition (compose.py), option files on the
search path (store.py), stacks, the factor product and capability checks (plan.py), memory
(memory.py), run options (options.py), and the plan itself (runplan.py)."""
