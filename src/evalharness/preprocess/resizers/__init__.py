"""One module per resize library; importing this package registers them all."""

from evalharness.preprocess.resizers import none, opencv, pil, torchvision  # noqa: F401
