"""From a RunPlan to a finished run dir (run.py), configs a run lacks evaluated on demand
(ondemand.py), shards merged into one run dir (merge.py)."""
