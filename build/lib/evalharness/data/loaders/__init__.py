"""One module per annotation format, each registering its dataset `kind`s in LOADERS (found by
the registry: adding a format is a module here, or an `evalharness.datasets` entry point).

A loader takes the dataset's settings as plain data (config/ resolved them) and returns a
Dataset whose samples are in a fixed order.
"""
