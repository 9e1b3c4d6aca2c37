"""Library versions for the results rows: the core stack, then every registered runtime,
decoder and resizer asked for its own (backends/, preprocess/ declare them)."""

from __future__ import annotations

from functools import lru_cache

from evalharness import provenance
from evalharness.backends.base import BACKENDS
from evalharness.preprocess.decode import DECODERS
from evalharness.preprocess.resize import RESIZERS


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    providers = [cls().versions for _, cls in BACKENDS.items()]
    providers += [info.versions for _, info in DECODERS.items()]
    providers += [info.versions for _, info in RESIZERS.items()]
    return provenance.collect(providers)
