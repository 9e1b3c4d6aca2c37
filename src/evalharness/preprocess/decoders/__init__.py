"""One module per decoder library; importing this package registers them all.

Modules of optional libraries import them inside the decode function, so a missing library
breaks only the configs that use it (planning says which extra to install).
"""

from evalharness.preprocess.decoders import (  # noqa: F401
    kornia_rs,
    opencv,
    pil,
    simplejpeg,
    torchvision,
)
