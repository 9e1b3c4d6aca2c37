"""evalharness's Hydra search-path plugin (see evalharness_searchpath.py)."""
