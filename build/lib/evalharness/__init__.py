"""evalharness: same weights, different numbers; find the preprocessing factor to blame.

    import evalharness
    res = evalharness.sweep(["+sweep=preproc_ablation"])   # or evalharness.Results(run_dir)
    res.summary, res.explain(b={"resize": "cv2_linear"}).verdict

The package root holds the version and nothing else: the facade (`sweep`, `Results`) lives
in evalharness.api and is loaded on first use, so `import evalharness` stays instant and no
module of the package needs to import its root.
"""

from __future__ import annotations

from evalharness._version import __version__

__all__ = ["__version__", "sweep", "Results", "Explanation"]

_FACADE = ("sweep", "Results", "Explanation")


def __getattr__(name: str):
    if name in _FACADE:
        from evalharness import api

        return getattr(api, name)
    raise AttributeError(f"module 'evalharness' has no attribute '{name}'")
