"""One module per resize library, each registering itself in RESIZERS (found by the
registry: adding a resizer is a module here, or an `evalharness.resizers` entry point).

Modules of optional libraries import them inside the resize function, so a missing library
breaks only the configs that use it (planning says which extra to install).
"""
