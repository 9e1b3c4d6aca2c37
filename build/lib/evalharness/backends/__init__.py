"""Inference backends: what a runtime is (base.py), the runtimes (runtimes/), and the models
they derive (export, graph normalization, fp16, int8, conversions; cached by content).

Runtime modules are light: each imports its runtime inside `load()`, so registering one whose
optional runtime is absent costs nothing and breaks only the configs that use it.
"""
