"""One module per resize library; importing this package registers them all.

Modules of optional libraries import them inside the resize function, so a missing library
breaks only the configs that use it (planning says which extra to install).
"""

from evalharness.preprocess.resizers import (  # noqa: F401
    cykooz,
    kornia_rs,
    ncnn,
    none,
    opencv,
    ov_ppp,
    pil,
    torchvision,
)
