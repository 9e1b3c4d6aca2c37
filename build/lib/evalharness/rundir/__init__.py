"""A run dir on disk: its files and the writes that make a kill harmless (store.py), the lock
and the check before anything is written (claim.py), what it recorded about itself
(read.py) and its summary table (summary.py)."""
