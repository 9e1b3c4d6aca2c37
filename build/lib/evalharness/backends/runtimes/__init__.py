"""One module per runtime (`<name>_backend.py`), each registering itself in BACKENDS.

Found by the registry (registry.py): adding a runtime is adding a module here (or an entry
point in the `evalharness.backends` group), its conf/backend YAML and its pyproject extra.
"""
